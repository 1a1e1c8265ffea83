//! Writes the environment-level rows of a [`Plan`]: this environment's feature states and
//! segment overrides, each set replaced whole (identity overrides are
//! [`super::identities`]'s). States and overrides keep
//! the document's `django_id` as their hashing id (`hash_id`, and as row id when it is free)
//! and their variants' value ids (`mv_value_ids`): both decide multivariate bucketing.

use serde_json::Value;

use super::ids::{insert_with_id, Ids};
use super::plan::{Plan, PlanState};
use super::write::{state_of, Mapped};
use crate::values::{encode_allocations, encode_value, MvAllocation};
use crate::{clock::now_ms, sql, Result, Tx};

/// This state's allocations over every option of its feature (unlisted ones at 0 %, so the
/// feature's defaults never leak into an imported state).
fn allocations(state: &PlanState, options: &[i64]) -> String {
    let allocs: Vec<MvAllocation> = options
        .iter()
        .enumerate()
        .map(|(i, &id)| MvAllocation {
            multivariate_feature_option: id,
            percentage_allocation: state
                .allocations
                .iter()
                .find(|a| a.option == i)
                .map_or(0.0, |a| a.percentage),
        })
        .collect();
    encode_allocations(&allocs)
}

/// The `mv_value_ids` column of an imported state: `[[option id, value id, value uuid]]` for
/// the values the document lists; NULL when it lists none.
fn value_ids(state: &PlanState, options: &[i64]) -> Option<String> {
    if state.allocations.is_empty() {
        return None;
    }
    let rows: Vec<(i64, Option<i64>, Option<&str>)> = state
        .allocations
        .iter()
        .map(|a| (options[a.option], a.value_id, a.value_uuid.as_deref()))
        .collect();
    serde_json::to_string(&rows).ok()
}

/// The document's uuid verbatim (when the state has no `django_id` it is what Flagsmith
/// hashed), or a new one.
fn state_uuid(s: &PlanState) -> String {
    s.uuid
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The row id an imported state asks for: its `django_id` when positive.
fn wanted_id(s: &PlanState) -> Option<i64> {
    s.hash_id.filter(|d| *d > 0)
}

/// Hashing ids of states and overrides share one space (Flagsmith keeps both in one table), so
/// both tables' sequences move past each imported one.
fn record_state_hash(ids: &mut Ids, s: &PlanState) {
    if let Some(h) = s.hash_id {
        ids.record_hash("feature_states", h);
        ids.record_hash("segment_overrides", h);
    }
}

/// Deletes the environment's rows of `table` (one of this module's fixed table names), which
/// an import then writes anew.
pub(super) async fn clear(tx: &mut Tx, table: &'static str, environment: i64) -> Result<()> {
    let statement = format!("DELETE FROM {table} WHERE environment_id = $1");
    sql!(&mut *tx, |c| sqlx::query(&statement)
        .bind(environment)
        .execute(c)
        .await?
        .rows_affected());
    Ok(())
}

pub(super) async fn states(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &Plan,
    m: &Mapped,
    environment: i64,
) -> Result<()> {
    clear(tx, "feature_states", environment).await?;
    let now = now_ms();
    for i in 0..plan.features.len() {
        // A feature the document has no environment state for (only overrides): disabled,
        // with a hashing id of its own.
        let blank = PlanState {
            feature: i,
            hash_id: None,
            uuid: None,
            enabled: false,
            value: Value::Null,
            allocations: vec![],
        };
        let s = state_of(plan, i).unwrap_or(&blank);
        record_state_hash(ids, s);
        insert_with_id!(
            tx,
            ids,
            "feature_states",
            [
                "feature_id",
                "environment_id",
                "enabled",
                "value",
                "mv_allocations",
                "uuid",
                "hash_id",
                "mv_value_ids",
                "updated_at"
            ],
            wanted_id(s),
            |q| q
                .bind(m.features[i])
                .bind(environment)
                .bind(s.enabled)
                .bind(encode_value(&s.value))
                .bind(allocations(s, &m.options[i]))
                .bind(state_uuid(s))
                .bind(s.hash_id)
                .bind(value_ids(s, &m.options[i]))
                .bind(now)
        );
    }
    Ok(())
}

pub(super) async fn overrides(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &Plan,
    m: &Mapped,
    segments: &[i64],
    environment: i64,
) -> Result<()> {
    clear(tx, "segment_overrides", environment).await?;
    let now = now_ms();
    for (seg, &segment_id) in plan.segments.iter().zip(segments) {
        for (priority, s) in &seg.overrides {
            record_state_hash(ids, s);
            insert_with_id!(
                tx,
                ids,
                "segment_overrides",
                [
                    "feature_id",
                    "segment_id",
                    "environment_id",
                    "priority",
                    "enabled",
                    "value",
                    "mv_allocations",
                    "uuid",
                    "hash_id",
                    "mv_value_ids",
                    "updated_at"
                ],
                wanted_id(s),
                |q| q
                    .bind(m.features[s.feature])
                    .bind(segment_id)
                    .bind(environment)
                    .bind(*priority)
                    .bind(s.enabled)
                    .bind(encode_value(&s.value))
                    .bind(allocations(s, &m.options[s.feature]))
                    .bind(state_uuid(s))
                    .bind(s.hash_id)
                    .bind(value_ids(s, &m.options[s.feature]))
                    .bind(now)
            );
        }
    }
    Ok(())
}
