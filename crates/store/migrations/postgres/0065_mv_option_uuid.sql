-- Flagsmith's `GET /api/v1/multivariate/options/get-by-uuid/{uuid}/` (issue 15) reads an option
-- by its uuid. Every option's uuid is a random version-4 uuid. Same text for SQLite and
-- PostgreSQL.
CREATE UNIQUE INDEX mv_options_uuid ON mv_options(uuid);
