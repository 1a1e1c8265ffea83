-- Hashing identities and import provenance (issue 15). Same text for SQLite and PostgreSQL.
--
-- Flagsmith's bucketing hashes ids: a percentage split hashes str(segment.id), a variant is
-- chosen by hashing the feature state's django_id (its featurestate_uuid when that is null or
-- 0) and walking the variants in the order of their value ids. An import keeps those ids here,
-- apart from the row ids, so a user lands in the same bucket whatever else the installation
-- holds. NULL means "created in Flagstone: the row id is the hashing identity".

-- The segment id documents carry (its percentage splits hash it).
ALTER TABLE segments ADD COLUMN hash_id BIGINT NULL;
-- Two segments of one project never share a hashing identity (documents key segments by it).
CREATE UNIQUE INDEX segments_hash_id ON segments(project_id, COALESCE(hash_id, id));

-- The django_id documents carry: NULL = the row id; 0 = none (the uuid is hashed).
ALTER TABLE feature_states ADD COLUMN hash_id BIGINT NULL;
ALTER TABLE segment_overrides ADD COLUMN hash_id BIGINT NULL;
-- The multivariate value ids and uuids of an imported state, JSON
-- [[option id, value id or null, value uuid or null], ...]; they order its variants.
ALTER TABLE feature_states ADD COLUMN mv_value_ids TEXT NULL;
ALTER TABLE segment_overrides ADD COLUMN mv_value_ids TEXT NULL;

-- A feature's id in the installation it was imported from (NULL: created in Flagstone), so a
-- later document of the same source follows a rename.
ALTER TABLE features ADD COLUMN source_id BIGINT NULL;

-- Where a project or organisation was first imported from: the source installation (a label
-- the user gives, or one generated per import run) and its id there. A later document merges
-- into it only when both match.
ALTER TABLE projects ADD COLUMN import_source TEXT NULL;
ALTER TABLE projects ADD COLUMN import_source_id BIGINT NULL;
CREATE INDEX projects_import_source ON projects(import_source, import_source_id);
ALTER TABLE organisations ADD COLUMN import_source TEXT NULL;
ALTER TABLE organisations ADD COLUMN import_source_id BIGINT NULL;
