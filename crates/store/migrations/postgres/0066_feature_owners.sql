-- Feature owners (issue 15), as Flagsmith's `Feature.owners` and `Feature.group_owners`: the
-- people and groups of the organisation responsible for a feature. Same text for SQLite and
-- PostgreSQL.
CREATE TABLE feature_owners (
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (feature_id, user_id)
);
CREATE INDEX feature_owners_user ON feature_owners(user_id);

CREATE TABLE feature_group_owners (
    feature_id BIGINT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (feature_id, group_id)
);
CREATE INDEX feature_group_owners_group ON feature_group_owners(group_id);
