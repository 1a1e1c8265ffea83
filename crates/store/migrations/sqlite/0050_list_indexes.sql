-- Admin cost independent of installation size (issue 14): every list that filters by its
-- parent and orders by id gets an index on (parent, id), so PostgreSQL's generic plans read
-- one environment's (or project's) rows in order instead of walking the whole table by its
-- primary key. `tests/plans.rs` checks every admin and SDK read path against these.

-- `…/featurestates/` of one environment (the issue's query), by id.
CREATE INDEX feature_states_environment ON feature_states(environment_id, id);
-- Features and segments of a project, by id.
CREATE INDEX features_project ON features(project_id, id);
CREATE INDEX segments_project ON segments(project_id, id);
-- Identities of an environment, by id.
CREATE INDEX identities_environment ON identities(environment_id, id);
-- Environments of a project and projects of an organisation, by id (replacing the
-- single-column indexes, which these cover).
CREATE INDEX environments_project_id ON environments(project_id, id);
DROP INDEX environments_project;
CREATE INDEX projects_organisation_id ON projects(organisation_id, id);
DROP INDEX projects_organisation;
-- The audit log of one environment, newest first.
CREATE INDEX audit_log_environment ON audit_log(environment_id, id);
