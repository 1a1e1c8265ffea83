-- People, part 2 (issue 9): groups of users, permission grants (to users, groups and
-- organisation API keys), organisation API keys, and invitations. SQLite dialect; keep in step with
-- migrations/postgres.

CREATE TABLE user_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organisation_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Flagsmith's `is_default`: people who join the organisation join the group too.
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    UNIQUE (organisation_id, name)
);

CREATE TABLE user_group_members (
    group_id BIGINT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX user_group_members_user ON user_group_members(user_id);

-- Organisation API keys (Flagsmith's "master API keys"). `prefix` is the key's first
-- characters, shown in lists and used to find the row; the key itself is stored only as its
-- SHA-256. Revoking sets `revoked_at`: the row stays for the audit trail.
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organisation_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL,
    created_by BIGINT NULL REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL,
    last_used_at BIGINT NULL,
    revoked_at BIGINT NULL
);
CREATE INDEX api_keys_organisation ON api_keys(organisation_id);

-- A grant: what one holder (a user, a group or an organisation API key: exactly one of the
-- three) holds in one scope (an organisation, a project or an environment). `permissions` is
-- the permission keys separated by commas; `admin` implies all of them. The organisation,
-- and the project of an environment, are kept on the row so a caller's grants load in one
-- query; rows go when their holder or scope is deleted.
CREATE TABLE permission_grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id BIGINT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    api_key_id BIGINT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    -- `organisation`, `project` or `environment`.
    scope TEXT NOT NULL,
    organisation_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    project_id BIGINT NULL REFERENCES projects(id) ON DELETE CASCADE,
    environment_id BIGINT NULL REFERENCES environments(id) ON DELETE CASCADE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    permissions TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((CASE WHEN user_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN group_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN api_key_id IS NULL THEN 0 ELSE 1 END) = 1),
    CHECK ((scope = 'organisation' AND project_id IS NULL AND environment_id IS NULL)
        OR (scope = 'project' AND project_id IS NOT NULL AND environment_id IS NULL)
        OR (scope = 'environment' AND project_id IS NOT NULL AND environment_id IS NOT NULL))
);
-- One grant per holder and scope (a second grant is an update of the first).
CREATE UNIQUE INDEX permission_grants_user ON permission_grants
    (user_id, scope, organisation_id, COALESCE(project_id, 0), COALESCE(environment_id, 0))
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX permission_grants_group ON permission_grants
    (group_id, scope, organisation_id, COALESCE(project_id, 0), COALESCE(environment_id, 0))
    WHERE group_id IS NOT NULL;
CREATE UNIQUE INDEX permission_grants_key ON permission_grants
    (api_key_id, scope, organisation_id, COALESCE(project_id, 0), COALESCE(environment_id, 0))
    WHERE api_key_id IS NOT NULL;
CREATE INDEX permission_grants_project ON permission_grants(project_id);
CREATE INDEX permission_grants_environment ON permission_grants(environment_id);

-- Invitations: shareable links (`kind` = `link`, reusable until they expire or are deleted)
-- and per-email invites (`kind` = `email`, used once). The invite's hash (the secret in the
-- join link) is stored as `lookup` (its first characters) + SHA-256, like tokens.
CREATE TABLE invites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organisation_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    email TEXT NULL,
    email_key TEXT NULL,
    role TEXT NOT NULL,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    invited_by BIGINT NULL REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX invites_email ON invites(organisation_id, email_key) WHERE email_key IS NOT NULL;

-- Groups an emailed invite adds its user to.
CREATE TABLE invite_groups (
    invite_id BIGINT NOT NULL REFERENCES invites(id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (invite_id, group_id)
);
