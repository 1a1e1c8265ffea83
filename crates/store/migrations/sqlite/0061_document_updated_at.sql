-- Conditional requests at full precision (issue 15). Same text for SQLite and PostgreSQL.
-- If-Modified-Since has whole seconds: a client that sends the second of the document it holds
-- holds the published one only if no earlier published document shares that second. Each row
-- keeps its document's updated_at (Unix ms) and that of the document it replaced.
ALTER TABLE environment_documents ADD COLUMN updated_at BIGINT NULL;
ALTER TABLE environment_documents ADD COLUMN previous_updated_at BIGINT NULL;
