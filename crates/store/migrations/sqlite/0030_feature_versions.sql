-- Versions of a feature's configuration in an environment (issue 11, history and rollback):
-- its default state, its segment overrides in priority order and their multivariate
-- allocations, as deflated compact JSON, written in the transaction of the change that made
-- it. Only that feature in that environment is stored, never the document.
CREATE TABLE feature_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    -- The environment's revision once the change committed (a baseline: the revision it was
    -- found at).
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 'change', 'restore' or 'baseline' (a configuration no version recorded: before history
    -- began, or written outside the versioned paths, such as an import).
    kind TEXT NOT NULL,
    -- The audit actor: a user's email, api-key:<name>, admin-key:<name>; NULL for a baseline.
    author TEXT NULL,
    restored_from BIGINT NULL,
    config BLOB NOT NULL
);
CREATE INDEX feature_versions_history ON feature_versions(environment_id, feature_id, id);
