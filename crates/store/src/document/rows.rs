//! The rows a build streams, in document order, and the SQL that yields them. Both queries
//! return the same row shape so one writer handles segment overrides and environment states;
//! a feature state with multivariate options spans one row per option (consecutive).

/// One streamed row. `kind` 0 is a segment (its name and rules); `kind` 1 is a feature state
/// (a segment override when `segment_id` is set) joined with one of its feature's MV options.
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub segment_id: Option<i64>,
    pub kind: i64,
    pub segment_name: Option<String>,
    pub rules: Option<String>,
    pub priority: Option<i64>,
    pub state_id: Option<i64>,
    pub enabled: Option<bool>,
    pub value: Option<String>,
    pub mv_allocations: Option<String>,
    pub state_uuid: Option<String>,
    pub feature_id: Option<i64>,
    pub feature_name: Option<String>,
    pub feature_type: Option<String>,
    pub option_id: Option<i64>,
    pub option_value: Option<String>,
    pub option_key: Option<String>,
    pub option_default: Option<f64>,
}

/// The environment, its project and organisation: everything the document's header needs.
#[derive(sqlx::FromRow)]
pub(crate) struct Header {
    pub id: i64,
    pub name: String,
    pub api_key: String,
    pub revision: i64,
    pub allow_client_traits: bool,
    pub hide_disabled_flags: Option<bool>,
    pub hide_sensitive_data: bool,
    pub use_identity_composite_key_for_hashing: bool,
    pub use_identity_overrides_in_local_eval: bool,
    pub updated_at: i64,
    pub project_id: i64,
    pub project_name: String,
    pub project_hide_disabled_flags: bool,
    pub enable_realtime_updates: bool,
    pub limits: String,
    pub organisation_id: i64,
    pub organisation_name: String,
    pub feature_analytics: bool,
    pub stop_serving_flags: bool,
    pub persist_trait_data: bool,
}

pub(crate) const HEADER: &str =
    "SELECT e.id, e.name, e.api_key, e.revision, e.allow_client_traits, \
        e.hide_disabled_flags, e.hide_sensitive_data, e.use_identity_composite_key_for_hashing, \
        e.use_identity_overrides_in_local_eval, e.updated_at, \
        p.id AS project_id, p.name AS project_name, \
        p.hide_disabled_flags AS project_hide_disabled_flags, p.enable_realtime_updates, p.limits, \
        o.id AS organisation_id, o.name AS organisation_name, o.feature_analytics, \
        o.stop_serving_flags, o.persist_trait_data \
    FROM environments e JOIN projects p ON p.id = e.project_id \
    JOIN organisations o ON o.id = p.organisation_id WHERE e.id = $1";

pub(crate) const SERVER_KEY_ONLY: &str =
    "SELECT id FROM features WHERE project_id = $1 AND is_server_key_only = TRUE ORDER BY id";

/// Segments by id, each followed by this environment's overrides on it by priority: one sorted
/// stream, so the writer never has to look back. Placeholders are typed (CAST) so both
/// backends agree on the column types of the UNION.
pub(crate) const SEGMENTS: &str = "SELECT s.id AS segment_id, CAST(0 AS BIGINT) AS kind, \
        s.name AS segment_name, s.rules AS rules, CAST(NULL AS BIGINT) AS priority, \
        CAST(NULL AS BIGINT) AS state_id, CAST(NULL AS BOOLEAN) AS enabled, \
        CAST(NULL AS TEXT) AS value, CAST(NULL AS TEXT) AS mv_allocations, \
        CAST(NULL AS TEXT) AS state_uuid, CAST(NULL AS BIGINT) AS feature_id, \
        CAST(NULL AS TEXT) AS feature_name, CAST(NULL AS TEXT) AS feature_type, \
        CAST(NULL AS BIGINT) AS option_id, CAST(NULL AS TEXT) AS option_value, \
        CAST(NULL AS TEXT) AS option_key, CAST(NULL AS DOUBLE PRECISION) AS option_default \
    FROM segments s WHERE s.project_id = $2 \
    UNION ALL \
    SELECT so.segment_id, CAST(1 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
        so.priority, so.id, so.enabled, so.value, so.mv_allocations, so.uuid, \
        f.id, f.name, f.type, m.id, m.value, m.key, m.default_percentage_allocation \
    FROM segment_overrides so JOIN features f ON f.id = so.feature_id \
    LEFT JOIN mv_options m ON m.feature_id = so.feature_id \
    WHERE so.environment_id = $1 \
    ORDER BY 1, 2, 5, 6, 14";

/// The environment's default feature states by feature id, with their MV options.
pub(crate) const STATES: &str = "SELECT CAST(NULL AS BIGINT) AS segment_id, \
        CAST(1 AS BIGINT) AS kind, CAST(NULL AS TEXT) AS segment_name, \
        CAST(NULL AS TEXT) AS rules, CAST(NULL AS BIGINT) AS priority, fs.id AS state_id, \
        fs.enabled AS enabled, fs.value AS value, fs.mv_allocations AS mv_allocations, \
        fs.uuid AS state_uuid, f.id AS feature_id, f.name AS feature_name, \
        f.type AS feature_type, m.id AS option_id, m.value AS option_value, \
        m.key AS option_key, m.default_percentage_allocation AS option_default \
    FROM feature_states fs JOIN features f ON f.id = fs.feature_id \
    LEFT JOIN mv_options m ON m.feature_id = f.id \
    WHERE fs.environment_id = $1 \
    ORDER BY f.id, fs.id, m.id";
