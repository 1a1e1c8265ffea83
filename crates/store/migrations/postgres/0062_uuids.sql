-- A `uuid` on organisations, projects, environments, features and segments (issue 15), as
-- Flagsmith's serializers give one and its clients (the Terraform provider) address objects by
-- it (`…/get-by-uuid/<uuid>/`). Feature states, overrides and multivariate options already
-- have theirs. Flagstone's code sets it on insert; existing rows get a random version-4 uuid
-- here, and rows inserted without one (imports writing explicit columns) get one from the
-- database.

ALTER TABLE organisations ADD COLUMN uuid TEXT NOT NULL DEFAULT gen_random_uuid()::text;
CREATE UNIQUE INDEX organisations_uuid ON organisations(uuid);

ALTER TABLE projects ADD COLUMN uuid TEXT NOT NULL DEFAULT gen_random_uuid()::text;
CREATE UNIQUE INDEX projects_uuid ON projects(uuid);

ALTER TABLE environments ADD COLUMN uuid TEXT NOT NULL DEFAULT gen_random_uuid()::text;
CREATE UNIQUE INDEX environments_uuid ON environments(uuid);

ALTER TABLE features ADD COLUMN uuid TEXT NOT NULL DEFAULT gen_random_uuid()::text;
CREATE UNIQUE INDEX features_uuid ON features(uuid);

ALTER TABLE segments ADD COLUMN uuid TEXT NOT NULL DEFAULT gen_random_uuid()::text;
CREATE UNIQUE INDEX segments_uuid ON segments(uuid);
