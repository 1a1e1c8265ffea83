-- Flagstone's own webhook events (issue 12). Same text for SQLite and PostgreSQL.

-- ENVIRONMENT_PUBLISHED reports how many identity overrides each feature had at the previous
-- published revision. They are not in the environment document, so the counts seen at each
-- announced publish are kept here (JSON object: feature id -> count).
CREATE TABLE publish_announcements (
    environment_id BIGINT PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    identity_overrides TEXT NOT NULL,
    announced_at BIGINT NOT NULL
);

-- QUEUE_HEALTH: the health status last announced, shared by every process on the store. A
-- process that sees a transition records it here first; only the one that changes the row
-- queues the alert, under the row's new sequence number as event id, so two processes
-- watching the same store never alert twice for one transition.
CREATE TABLE health_alerts (
    id BIGINT PRIMARY KEY,
    status TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
