-- Change requests (issue 11): an environment with minimum_change_request_approvals set takes
-- its feature-state changes from callers without environment admin only through a change
-- request, applied once it has that many approvals. NULL: change requests are off.
-- SQLite dialect; keep in step with the other directory.
ALTER TABLE environments ADD COLUMN minimum_change_request_approvals BIGINT NULL;

CREATE TABLE change_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NULL,
    -- JSON array of {feature, enabled?, feature_state_value?, multivariate_feature_state_values?}:
    -- the same updates a scheduled change carries.
    changes TEXT NOT NULL,
    -- JSON array: each changed feature's state when the request was opened, to tell at commit
    -- whether what it changes was changed since (a stale request is refused).
    base TEXT NOT NULL,
    -- When the change takes effect once committed (ms); NULL: at commit.
    live_from BIGINT NULL,
    -- Who opened it: the audit log's name and a stable key (user:ID, api-key:ID, admin-key:ID).
    author TEXT NOT NULL,
    author_key TEXT NOT NULL,
    author_user_id BIGINT NULL,
    author_api_key_id BIGINT NULL,
    author_admin_key_id BIGINT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    committed_at BIGINT NULL,
    committed_by TEXT NULL,
    -- The scheduled change it became (committed with a future live_from).
    scheduled_change_id BIGINT NULL,
    -- Closed without being committed (Flagsmith's deleted_at).
    deleted_at BIGINT NULL,
    deleted_by TEXT NULL
);
CREATE INDEX change_requests_environment ON change_requests(environment_id, id);

CREATE TABLE change_request_approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    change_request_id BIGINT NOT NULL REFERENCES change_requests(id) ON DELETE CASCADE,
    approver TEXT NOT NULL,
    approver_key TEXT NOT NULL,
    user_id BIGINT NULL,
    approved_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX change_request_approvals_once
    ON change_request_approvals(change_request_id, approver_key);
