-- Flag usage (issue 13). Same text for SQLite and PostgreSQL.
-- Evaluations per feature, environment and hour, written in batches by each edge's usage
-- flusher (never one write per request): `reported` counts what SDKs sent to
-- /api/v1/analytics/flags/, `served` what the edge evaluated for its own responses.
-- `hour` is the hour's start (Unix ms); `last_evaluated_at` the latest flush that counted one.
CREATE TABLE feature_evaluations (
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    reported BIGINT NOT NULL DEFAULT 0,
    served BIGINT NOT NULL DEFAULT 0,
    last_evaluated_at BIGINT NOT NULL,
    PRIMARY KEY (environment_id, feature_id, hour)
);
-- Staleness asks per feature across the project's environments.
CREATE INDEX feature_evaluations_feature ON feature_evaluations(feature_id, hour);

-- When a project's features count as stale (null: the installation's default).
-- stale_flags_limit_days: served to nobody for this many days (Flagsmith's name).
-- stale_fixed_value_days: one fixed value served everywhere, unchanged, for this many days.
ALTER TABLE projects ADD COLUMN stale_flags_limit_days BIGINT NULL;
ALTER TABLE projects ADD COLUMN stale_fixed_value_days BIGINT NULL;
