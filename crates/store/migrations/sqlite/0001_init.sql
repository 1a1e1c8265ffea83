-- Flagstone schema, SQLite dialect. Keep in step with migrations/postgres.
-- Timestamps are Unix milliseconds (BIGINT) so both backends store and compare them alike.
CREATE TABLE organisations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    stop_serving_flags BOOLEAN NOT NULL DEFAULT FALSE,
    persist_trait_data BOOLEAN NOT NULL DEFAULT TRUE,
    feature_analytics BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organisation_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hide_disabled_flags BOOLEAN NOT NULL DEFAULT FALSE,
    enable_realtime_updates BOOLEAN NOT NULL DEFAULT FALSE,
    limits TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX projects_organisation ON projects(organisation_id);

CREATE TABLE environments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    api_key TEXT NOT NULL UNIQUE,
    allow_client_traits BOOLEAN NOT NULL DEFAULT TRUE,
    hide_disabled_flags BOOLEAN NULL,
    hide_sensitive_data BOOLEAN NOT NULL DEFAULT FALSE,
    use_identity_composite_key_for_hashing BOOLEAN NOT NULL DEFAULT TRUE,
    use_identity_overrides_in_local_eval BOOLEAN NOT NULL DEFAULT TRUE,
    revision BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX environments_project ON environments(project_id);

CREATE TABLE admin_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE server_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at BIGINT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX server_keys_environment ON server_keys(environment_id);

CREATE TABLE features (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    initial_value TEXT NULL,
    default_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT NULL,
    is_server_key_only BOOLEAN NOT NULL DEFAULT FALSE,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE mv_options (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    value TEXT NULL,
    default_percentage_allocation DOUBLE PRECISION NOT NULL DEFAULT 0,
    key TEXT NULL,
    uuid TEXT NOT NULL
);
CREATE INDEX mv_options_feature ON mv_options(feature_id);

-- Environment defaults: one per feature x environment.
CREATE TABLE feature_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL,
    value TEXT NULL,
    mv_allocations TEXT NOT NULL DEFAULT '[]',
    uuid TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (environment_id, feature_id)
);
CREATE INDEX feature_states_feature ON feature_states(feature_id);

CREATE TABLE segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE segment_overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    segment_id BIGINT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    priority BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL,
    value TEXT NULL,
    mv_allocations TEXT NOT NULL DEFAULT '[]',
    uuid TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (environment_id, feature_id, segment_id)
);
-- The document builder reads overrides per (environment, segment) in priority order.
CREATE INDEX segment_overrides_build ON segment_overrides(environment_id, segment_id, priority);
CREATE INDEX segment_overrides_feature ON segment_overrides(feature_id);

CREATE TABLE identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (environment_id, identifier)
);

CREATE TABLE traits (
    identity_id BIGINT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    trait_key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (identity_id, trait_key)
);

-- Identity overrides live outside the main environment document (see DESIGN §4).
CREATE TABLE identity_overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity_id BIGINT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL,
    value TEXT NULL,
    uuid TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (identity_id, feature_id)
);
CREATE INDEX identity_overrides_environment ON identity_overrides(environment_id, identity_id);
CREATE INDEX identity_overrides_feature ON identity_overrides(feature_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    project_id BIGINT NULL,
    environment_id BIGINT NULL,
    actor TEXT NOT NULL,
    admin_key_id BIGINT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    log TEXT NOT NULL,
    before_state TEXT NULL,
    after_state TEXT NULL
);
CREATE INDEX audit_log_project ON audit_log(project_id, id);

-- One row per environment that needs publishing: the queue *is* the coalescing (DESIGN §2).
CREATE TABLE publish_jobs (
    environment_id BIGINT PRIMARY KEY,
    wanted_revision BIGINT NOT NULL,
    state TEXT NOT NULL,
    run_after BIGINT NOT NULL,
    first_requested_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT NULL,
    lease_until BIGINT NULL,
    last_error TEXT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX publish_jobs_claim ON publish_jobs(state, run_after);
