//! The rows a build streams, in document order, and the SQL that yields them. Segments come one
//! row each, with their overrides in this environment aggregated into a JSON array that expands
//! into the same [`Row`]s as the environment's states, so one writer handles both; a feature
//! state with multivariate options spans one row per option (consecutive).

/// One streamed row. `kind` 0 is a segment (its name and rules); `kind` 1 is a feature state
/// (a segment override when `segment_id` is set) joined with one of its feature's MV options.
/// The segment columns are only read by the UNION reference (`testing`).
#[derive(sqlx::FromRow)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) struct Row {
    pub segment_id: Option<i64>,
    pub kind: i64,
    /// The segment's hashing id (read by the UNION reference only).
    pub segment_key: Option<i64>,
    pub segment_name: Option<String>,
    pub rules: Option<String>,
    pub priority: Option<i64>,
    pub state_id: Option<i64>,
    pub enabled: Option<bool>,
    pub value: Option<String>,
    pub mv_allocations: Option<String>,
    pub state_uuid: Option<String>,
    /// The state's stored hashing id (`hash_id`: NULL = its row id, 0 = hash the uuid).
    pub state_hash_id: Option<i64>,
    /// The imported variants' value ids (`mv_value_ids`), when any.
    pub mv_value_ids: Option<String>,
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

/// One segment with all of this environment's overrides on it: `overrides` is a JSON array of
/// [`OverrideItem`]s in document order (priority, hashing id, uuid, option id), or NULL when it has
/// none. One row per segment keeps the per-row cost of the driver (a channel hop and a copy of
/// every column on SQLite) off the 50,000 overrides of a large environment, and holds at most
/// one segment's overrides in memory.
#[derive(sqlx::FromRow)]
pub(crate) struct SegmentRow {
    pub segment_id: i64,
    /// The id documents carry (`COALESCE(hash_id, id)`): its percentage splits hash it.
    pub segment_key: i64,
    pub segment_name: String,
    pub rules: String,
    pub overrides: Option<String>,
}

/// Whether a boolean arrived as JSON `true`/`false` (PostgreSQL) or `1`/`0` (SQLite).
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Flag {
    Bool(bool),
    Int(i64),
}

impl Flag {
    fn get(self) -> bool {
        match self {
            Flag::Bool(b) => b,
            Flag::Int(i) => i != 0,
        }
    }
}

/// One element of [`SegmentRow::overrides`]: a segment override joined with one of its
/// feature's MV options, the same columns as a [`Row`] of kind 1. The option's default
/// allocation travels as text that round-trips the double exactly (17 significant digits on
/// SQLite, whose JSON and CAST render only 15; PostgreSQL's shortest exact form), so the
/// document carries the same number as when it is read as a column.
#[derive(serde::Deserialize)]
pub(crate) struct OverrideItem(
    i64,
    i64,
    Flag,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl OverrideItem {
    /// The equivalent streamed row.
    pub fn into_row(self, segment_id: i64) -> Result<Row, std::num::ParseFloatError> {
        let OverrideItem(
            state_id,
            priority,
            enabled,
            value,
            mv_allocations,
            state_uuid,
            state_hash_id,
            mv_value_ids,
            feature_id,
            feature_name,
            feature_type,
            option_id,
            option_value,
            option_key,
            option_default,
        ) = self;
        Ok(Row {
            segment_id: Some(segment_id),
            kind: 1,
            segment_key: None,
            segment_name: None,
            rules: None,
            priority: Some(priority),
            state_id: Some(state_id),
            enabled: Some(enabled.get()),
            value,
            mv_allocations,
            state_uuid,
            state_hash_id,
            mv_value_ids,
            feature_id: Some(feature_id),
            feature_name,
            feature_type,
            option_id,
            option_value,
            option_key,
            option_default: option_default.map(|d| d.parse()).transpose()?,
        })
    }
}

/// Segments by hashing id (the order of the document they were imported from, and one that
/// survives export → import), each with its overrides in this environment aggregated in
/// priority order. The scan walks the `segments_hash_id` index, whose order is the output's (no
/// temp B-tree that would hold every aggregated row); each segment's overrides are read through
/// `segment_overrides_build`. `json_group_array(… ORDER BY …)` needs SQLite 3.44 (the bundled
/// one is newer).
pub(crate) const SEGMENTS_SQLITE: &str = "SELECT s.id AS segment_id, \
        COALESCE(s.hash_id, s.id) AS segment_key, s.name AS segment_name, \
        s.rules AS rules, \
        (SELECT json_group_array(json_array(so.id, so.priority, so.enabled, so.value, \
                so.mv_allocations, so.uuid, so.hash_id, so.mv_value_ids, f.id, f.name, f.type, \
                m.id, m.value, m.key, printf('%!.17g', m.default_percentage_allocation)) \
                ORDER BY so.priority, COALESCE(so.hash_id, so.id), so.uuid, so.id, m.id) \
            FROM segment_overrides so JOIN features f ON f.id = so.feature_id \
            LEFT JOIN mv_options m ON m.feature_id = so.feature_id \
            WHERE so.environment_id = $1 AND so.segment_id = s.id) AS overrides \
    FROM segments s INDEXED BY segments_hash_id WHERE s.project_id = $2 \
    ORDER BY COALESCE(s.hash_id, s.id)";

/// The same for PostgreSQL; `json_agg` of nothing is NULL. The segments are sorted in a
/// subquery (`OFFSET 0` keeps it from being flattened) so the sort holds segments, not
/// aggregated overrides: with the sort on top, PostgreSQL evaluates every segment's subplan
/// first and sorts the whole environment (spilling to disk at 10x).
pub(crate) const SEGMENTS_POSTGRES: &str = "SELECT s.id AS segment_id, \
        s.segment_key, s.name AS segment_name, \
        s.rules AS rules, \
        (SELECT CAST(json_agg(json_build_array(so.id, so.priority, so.enabled, so.value, \
                so.mv_allocations, so.uuid, so.hash_id, so.mv_value_ids, f.id, f.name, f.type, \
                m.id, m.value, m.key, CAST(m.default_percentage_allocation AS TEXT)) \
                ORDER BY so.priority, COALESCE(so.hash_id, so.id), so.uuid, so.id, m.id) AS TEXT) \
            FROM segment_overrides so JOIN features f ON f.id = so.feature_id \
            LEFT JOIN mv_options m ON m.feature_id = so.feature_id \
            WHERE so.environment_id = $1 AND so.segment_id = s.id) AS overrides \
    FROM (SELECT id, COALESCE(hash_id, id) AS segment_key, name, rules FROM segments \
        WHERE project_id = $2 ORDER BY segment_key OFFSET 0) s \
    ORDER BY s.segment_key";

/// The previous shape of the segments stream, kept as the reference the per-segment queries
/// are tested against: segments by hashing id, each followed by this environment's overrides on
/// it by priority, as one sorted UNION. Placeholders are typed (CAST) so both backends agree on the
/// column types of the UNION.
#[cfg(feature = "testing")]
pub(crate) const SEGMENTS_UNION: &str = "SELECT s.id AS segment_id, CAST(0 AS BIGINT) AS kind, \
        COALESCE(s.hash_id, s.id) AS segment_key, \
        s.name AS segment_name, s.rules AS rules, CAST(NULL AS BIGINT) AS priority, \
        CAST(NULL AS BIGINT) AS state_id, CAST(NULL AS BOOLEAN) AS enabled, \
        CAST(NULL AS TEXT) AS value, CAST(NULL AS TEXT) AS mv_allocations, \
        CAST(NULL AS TEXT) AS state_uuid, CAST(NULL AS BIGINT) AS state_hash_id, \
        CAST(NULL AS TEXT) AS mv_value_ids, CAST(NULL AS BIGINT) AS feature_id, \
        CAST(NULL AS TEXT) AS feature_name, CAST(NULL AS TEXT) AS feature_type, \
        CAST(NULL AS BIGINT) AS option_id, CAST(NULL AS TEXT) AS option_value, \
        CAST(NULL AS TEXT) AS option_key, CAST(NULL AS DOUBLE PRECISION) AS option_default, \
        CAST(NULL AS BIGINT) AS state_order \
    FROM segments s WHERE s.project_id = $2 \
    UNION ALL \
    SELECT so.segment_id, CAST(1 AS BIGINT), \
        (SELECT COALESCE(s2.hash_id, s2.id) FROM segments s2 WHERE s2.id = so.segment_id), \
        CAST(NULL AS TEXT), \
        CAST(NULL AS TEXT), so.priority, so.id, so.enabled, so.value, so.mv_allocations, \
        so.uuid, so.hash_id, so.mv_value_ids, \
        f.id, f.name, f.type, m.id, m.value, m.key, m.default_percentage_allocation, \
        COALESCE(so.hash_id, so.id) \
    FROM segment_overrides so JOIN features f ON f.id = so.feature_id \
    LEFT JOIN mv_options m ON m.feature_id = so.feature_id \
    WHERE so.environment_id = $1 \
    ORDER BY 3, 1, 2, 6, 21, 11, 7, 17";

/// The environment's default feature states, with their MV options, in an order that survives
/// export → import (by hashing id, then uuid).
pub(crate) const STATES: &str = "SELECT CAST(NULL AS BIGINT) AS segment_id, \
        CAST(1 AS BIGINT) AS kind, CAST(NULL AS BIGINT) AS segment_key, CAST(NULL AS TEXT) AS segment_name, \
        CAST(NULL AS TEXT) AS rules, CAST(NULL AS BIGINT) AS priority, fs.id AS state_id, \
        fs.enabled AS enabled, fs.value AS value, fs.mv_allocations AS mv_allocations, \
        fs.uuid AS state_uuid, fs.hash_id AS state_hash_id, fs.mv_value_ids AS mv_value_ids, \
        f.id AS feature_id, f.name AS feature_name, \
        f.type AS feature_type, m.id AS option_id, m.value AS option_value, \
        m.key AS option_key, m.default_percentage_allocation AS option_default \
    FROM feature_states fs JOIN features f ON f.id = fs.feature_id \
    LEFT JOIN mv_options m ON m.feature_id = f.id \
    WHERE fs.environment_id = $1 \
    ORDER BY COALESCE(fs.hash_id, fs.id), fs.uuid, fs.id, m.id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sql, testing::test_store, Backend};

    /// The segments query reads each segment's overrides through `segment_overrides_build`
    /// and never sorts the aggregated rows (on SQLite: no temp B-tree outside the per-segment
    /// aggregate; on PostgreSQL: no Sort on top of the subplans).
    #[tokio::test]
    async fn segments_are_read_in_order_without_sorting_the_overrides() {
        let t = test_store().await;
        let mut tx = t.store.read().await.unwrap();
        match tx.backend() {
            Backend::Sqlite => {
                let plan: Vec<(i64, i64, i64, String)> = sql!(&mut tx, |c| sqlx::query_as(
                    &format!("EXPLAIN QUERY PLAN {SEGMENTS_SQLITE}")
                )
                .bind(1_i64)
                .bind(1_i64)
                .fetch_all(c)
                .await
                .unwrap());
                let text: Vec<String> = plan
                    .iter()
                    .map(|(id, parent, _, d)| format!("{id}/{parent} {d}"))
                    .collect();
                assert!(
                    plan.iter()
                        .any(|p| p.1 == 0 && p.3.contains("USING INDEX segments_hash_id")),
                    "{text:#?}"
                );
                assert!(
                    plan.iter().any(|p| p.3.contains("segment_overrides_build")),
                    "{text:#?}"
                );
                assert!(
                    !plan.iter().any(|p| p.1 == 0 && p.3.contains("TEMP B-TREE")),
                    "{text:#?}"
                );
            }
            Backend::Postgres => {
                let plan: Vec<String> = sql!(&mut tx, |c| sqlx::query_scalar(&format!(
                    "EXPLAIN {SEGMENTS_POSTGRES}"
                ))
                .bind(1_i64)
                .bind(1_i64)
                .fetch_all(c)
                .await
                .unwrap());
                assert!(!plan[0].trim_start().starts_with("Sort"), "{plan:#?}");
                // Per segment through an index (which one depends on the statistics: on
                // empty tables the unique (environment, feature, segment) index ties).
                assert!(
                    plan.iter()
                        .any(|l| l.contains("Index") && l.contains("on segment_overrides so")),
                    "{plan:#?}"
                );
            }
        }
    }
}
