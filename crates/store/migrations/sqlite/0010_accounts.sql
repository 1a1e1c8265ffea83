-- People (issue 9): user accounts, their API tokens and browser sessions, organisation
-- membership, and who made each audited change. SQLite dialect; keep in step with
-- migrations/postgres.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    -- The email trimmed and lower-cased: what sign-in and uniqueness compare.
    email_key TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    -- Argon2id, PHC string format. Never the password.
    password_hash TEXT NULL,
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NULL,
    password_changed_at BIGINT NULL
);

-- One row once the installation's first user exists: its primary key lets only one of two
-- simultaneous first sign-ups bootstrap the installation.
CREATE TABLE installation_bootstrap (
    id INTEGER PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- API tokens (`Authorization: Token …`) and browser sessions (the `flagstone_session` cookie).
-- `lookup` is the token's first characters, to find the row; the token itself is stored only
-- as its SHA-256 (`secret_hash`).
CREATE TABLE auth_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_id);
CREATE INDEX auth_tokens_expiry ON auth_tokens(expires_at);

CREATE TABLE organisation_members (
    organisation_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- `ADMIN` or `USER`.
    role TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, user_id)
);
CREATE INDEX organisation_members_user ON organisation_members(user_id);

-- Who: `actor` stays the display name (a user's email, a key's name); these say which row.
ALTER TABLE audit_log ADD COLUMN organisation_id BIGINT NULL;
ALTER TABLE audit_log ADD COLUMN user_id BIGINT NULL;
ALTER TABLE audit_log ADD COLUMN api_key_id BIGINT NULL;
UPDATE audit_log SET organisation_id =
    (SELECT p.organisation_id FROM projects p WHERE p.id = audit_log.project_id)
    WHERE project_id IS NOT NULL;
UPDATE audit_log SET organisation_id = CAST(resource_id AS INTEGER)
    WHERE resource_type = 'organisation';
CREATE INDEX audit_log_organisation ON audit_log(organisation_id, id);
