-- A `uuid` on organisations, projects, environments, features and segments (issue 15), as
-- Flagsmith's serializers give one and its clients (the Terraform provider) address objects by
-- it (`…/get-by-uuid/<uuid>/`). Feature states, overrides and multivariate options already
-- have theirs. Flagstone's code sets it on insert; existing rows get a random version-4 uuid
-- here, and rows inserted without one (imports writing explicit columns) get one from the
-- database.

ALTER TABLE organisations ADD COLUMN uuid TEXT NULL;
UPDATE organisations SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX organisations_uuid ON organisations(uuid);
CREATE TRIGGER organisations_uuid_default AFTER INSERT ON organisations WHEN NEW.uuid IS NULL
BEGIN
    UPDATE organisations SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))) WHERE id = NEW.id;
END;

ALTER TABLE projects ADD COLUMN uuid TEXT NULL;
UPDATE projects SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX projects_uuid ON projects(uuid);
CREATE TRIGGER projects_uuid_default AFTER INSERT ON projects WHEN NEW.uuid IS NULL
BEGIN
    UPDATE projects SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))) WHERE id = NEW.id;
END;

ALTER TABLE environments ADD COLUMN uuid TEXT NULL;
UPDATE environments SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX environments_uuid ON environments(uuid);
CREATE TRIGGER environments_uuid_default AFTER INSERT ON environments WHEN NEW.uuid IS NULL
BEGIN
    UPDATE environments SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))) WHERE id = NEW.id;
END;

ALTER TABLE features ADD COLUMN uuid TEXT NULL;
UPDATE features SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX features_uuid ON features(uuid);
CREATE TRIGGER features_uuid_default AFTER INSERT ON features WHEN NEW.uuid IS NULL
BEGIN
    UPDATE features SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))) WHERE id = NEW.id;
END;

ALTER TABLE segments ADD COLUMN uuid TEXT NULL;
UPDATE segments SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX segments_uuid ON segments(uuid);
CREATE TRIGGER segments_uuid_default AFTER INSERT ON segments WHEN NEW.uuid IS NULL
BEGIN
    UPDATE segments SET uuid = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))) WHERE id = NEW.id;
END;
