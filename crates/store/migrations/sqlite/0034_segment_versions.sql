-- Versions of a segment's definition (issue 11, "who broke the beta segment"): its name,
-- description and rules, as deflated positional JSON, written in the transaction of the change
-- that made it. The segment id is not a foreign key: the history of a deleted segment stays
-- readable (it ends with a 'deleted' version) until its project is deleted.
CREATE TABLE segment_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    segment_id BIGINT NOT NULL,
    -- 1, 2, 3… per segment.
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 'created', 'change', 'restore', 'deleted' or 'baseline' (a definition no version
    -- recorded: before history began, or written outside the versioned paths, an import).
    kind TEXT NOT NULL,
    -- The audit actor: a user's email, api-key:<name>, admin-key:<name>; NULL for a baseline.
    author TEXT NULL,
    restored_from BIGINT NULL,
    definition BLOB NOT NULL
);
CREATE UNIQUE INDEX segment_versions_history ON segment_versions(segment_id, revision);
CREATE INDEX segment_versions_project ON segment_versions(project_id);
