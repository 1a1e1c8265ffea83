-- Publishing pipeline (DESIGN §2, §4). SQLite dialect; keep in step with migrations/postgres.

-- The published document of each environment: gzip-compressed JSON, replaced atomically and
-- only by a newer revision (`… WHERE revision < excluded.revision`), so readers see the old or
-- the new document, never a mix and never an older one.
CREATE TABLE environment_documents (
    environment_id BIGINT PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    body BLOB NOT NULL,
    encoding TEXT NOT NULL,
    etag TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    compressed_bytes BIGINT NOT NULL,
    built_at BIGINT NOT NULL,
    build_ms BIGINT NOT NULL
);

-- History of builds for metrics and forensics; capped in size by the worker.
CREATE TABLE publish_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    bytes BIGINT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NULL
);
CREATE INDEX publish_log_environment ON publish_log(environment_id, id);

-- Why a job was parked, as a code (`document_too_large`, `too_many_failures`, …); the
-- human-readable message stays in last_error.
ALTER TABLE publish_jobs ADD COLUMN park_reason TEXT NULL;
-- Reclaiming dead workers' jobs looks up expired leases.
CREATE INDEX publish_jobs_lease ON publish_jobs(state, lease_until);

-- An operator discarded a parked job: the reconciler leaves this environment alone until a
-- change moves its revision past the discarded one.
CREATE TABLE publish_discarded (
    environment_id BIGINT PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    discarded_at BIGINT NOT NULL
);
