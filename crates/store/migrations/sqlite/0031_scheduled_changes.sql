-- Scheduled changes (issue 11): feature-state updates that take effect at `live_from`. The row
-- is both the schedule (what, when, who) and its queue job (state, attempts, run_after, last
-- error): the task processor applies a due row as an ordinary change in one transaction that
-- also marks it applied, so it takes effect exactly once however many workers look.
-- SQLite dialect; keep in step with the other directory.
CREATE TABLE scheduled_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    -- JSON array of {feature, enabled?, feature_state_value?, multivariate_feature_state_values?}.
    changes TEXT NOT NULL,
    -- When it takes effect (ms since the epoch).
    live_from BIGINT NOT NULL,
    -- 'pending', 'applied', 'cancelled' or 'parked' (applying it was refused).
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- When the next attempt is due: live_from, later after a failed attempt.
    run_after BIGINT NOT NULL,
    last_error TEXT NULL,
    park_reason TEXT NULL,
    -- Who scheduled it; the change is applied in their name.
    author TEXT NOT NULL,
    author_user_id BIGINT NULL,
    author_api_key_id BIGINT NULL,
    author_admin_key_id BIGINT NULL,
    -- The change request that scheduled it, if any.
    change_request_id BIGINT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    applied_at BIGINT NULL,
    -- The environment's revision once applied.
    applied_revision BIGINT NULL,
    cancelled_by TEXT NULL
);
CREATE INDEX scheduled_changes_due ON scheduled_changes(state, run_after);
CREATE INDEX scheduled_changes_environment ON scheduled_changes(environment_id, id);
