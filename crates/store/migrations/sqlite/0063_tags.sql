-- Tags as first-class objects of a project (issue 15), as Flagsmith has them
-- (`/api/v1/projects/{id}/tags/`: label, colour, description, uuid) with features carrying
-- tag ids. Until now a feature kept its tags as a JSON array of names in `features.tags`:
-- each distinct name of a project becomes one tag (colour #3d4db6), each
-- feature is linked to the tags it named, and the column goes, so the links are the only
-- record of a feature's tags.

CREATE TABLE tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    color TEXT NOT NULL,
    description TEXT NULL,
    is_permanent BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX tags_uuid ON tags(uuid);
CREATE INDEX tags_project ON tags(project_id, id);

CREATE TABLE feature_tags (
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (feature_id, tag_id)
);
CREATE INDEX feature_tags_tag ON feature_tags(tag_id, feature_id);

INSERT INTO tags (uuid, project_id, label, color, created_at)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))), project_id, label, '#3d4db6', created_at
FROM (
    SELECT f.project_id AS project_id, j.value AS label, MIN(f.created_at) AS created_at,
           MIN(f.id) AS first_feature
    FROM features f, json_each(f.tags) j
    GROUP BY f.project_id, j.value
) named
ORDER BY project_id, first_feature, label;

INSERT INTO feature_tags (feature_id, tag_id)
SELECT DISTINCT f.id, t.id
FROM features f, json_each(f.tags) j
JOIN tags t ON t.project_id = f.project_id AND t.label = j.value;

ALTER TABLE features DROP COLUMN tags;
