-- Webhooks (issue 12): environment and organisation webhooks, and their delivery queue, which
-- is also the delivery log. SQLite dialect; keep in step with the other directory.

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Exactly one of the two: an environment webhook or an organisation webhook.
    environment_id BIGINT NULL REFERENCES environments(id) ON DELETE CASCADE,
    organisation_id BIGINT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- The HMAC key. Kept as given (signing needs it); shown only when set, never logged.
    secret TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    -- Flagstone's opt-in event types (JSON array of names, e.g. ["ENVIRONMENT_PUBLISHED"]).
    events TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((environment_id IS NULL) <> (organisation_id IS NULL))
);
CREATE INDEX webhooks_environment ON webhooks(environment_id);
CREATE INDEX webhooks_organisation ON webhooks(organisation_id);

-- One row per (event, webhook), written in the change's own transaction. The row is the job
-- (state, attempts, run_after, lease — the publish queue's rules) and, once delivered or
-- parked, the delivery log (last response status and time, last error).
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    -- Sent as X-Flagstone-Event-Id; the same on every retry and redelivery.
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The exact bytes sent.
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    run_after BIGINT NOT NULL,
    lease_owner TEXT NULL,
    lease_until BIGINT NULL,
    last_error TEXT NULL,
    park_reason TEXT NULL,
    response_status BIGINT NULL,
    response_ms BIGINT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, run_after);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, id);
