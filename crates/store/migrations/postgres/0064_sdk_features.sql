-- The SDK's feature objects (issue 15): Flagsmith's `/flags/` and `/identities/` answers carry
-- each feature's `created_date`, `description`, `initial_value` and `default_enabled`, which the
-- environment document (Flagsmith's `FeatureModel`: id, name, type) does not; the legacy
-- `/flags/{id}/multivariate-options/` lists the options' values. A build stores them beside the
-- document, from the same snapshot, as JSON keyed by feature id. Same text for SQLite and
-- PostgreSQL.
ALTER TABLE environment_documents ADD COLUMN sdk_features TEXT NULL;
-- Published documents have none yet: moving every published environment's revision on makes
-- the reconciler republish them (within its interval), with the SDK fields.
UPDATE environments SET revision = revision + 1
    WHERE id IN (SELECT environment_id FROM environment_documents);
