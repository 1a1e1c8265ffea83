-- A multivariate option's `key` names it for clients; it is optional but unique within its
-- feature (NULLs are distinct, so options without a key never collide).
CREATE UNIQUE INDEX mv_options_feature_key ON mv_options(feature_id, key);
