//! Writes the environment-level rows of a [`Plan`]: this environment's feature states,
//! segment overrides and identity overrides, each set replaced whole. States and overrides keep
//! their `django_id` as row id when it is free, since it seeds multivariate bucketing.

use serde_json::Value;

use super::ids::{insert_with_id, Ids};
use super::plan::{Plan, PlanState};
use super::write::{state_of, Mapped};
use crate::values::{encode_allocations, encode_value, MvAllocation};
use crate::{clock::now_ms, sql, Result, StoreError, Tx};

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
                .find(|(o, _)| *o == i)
                .map_or(0.0, |a| a.1),
        })
        .collect();
    encode_allocations(&allocs)
}

fn state_uuid(s: &PlanState) -> String {
    s.uuid
        .as_deref()
        .and_then(|u| uuid::Uuid::parse_str(u).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .to_string()
}

/// Deletes the environment's rows of `table` (one of this module's fixed table names), which
/// an import then writes anew.
async fn clear(tx: &mut Tx, table: &'static str, environment: i64) -> Result<()> {
    let statement = format!("DELETE FROM {table} WHERE environment_id = $1");
    sql!(&mut *tx, |c| sqlx::query(&statement)
        .bind(environment)
        .execute(c)
        .await?
        .rows_affected());
    Ok(())
}

fn warn_django(plan_warnings: &mut Vec<String>, what: &str, s: &PlanState, got: i64) {
    if let Some(d) = s.django_id {
        if d != got && !s.allocations.is_empty() {
            plan_warnings.push(format!(
                "{what}: django_id {d} is used elsewhere, imported as {got}; variant assignment \
                 of this feature changes"
            ));
        }
    }
}

pub(super) async fn states(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &mut Plan,
    m: &Mapped,
    environment: i64,
) -> Result<()> {
    clear(tx, "feature_states", environment).await?;
    let now = now_ms();
    let mut warnings = Vec::new();
    for (i, f) in plan.features.iter().enumerate() {
        let blank = PlanState {
            feature: i,
            django_id: None,
            uuid: None,
            enabled: false,
            value: Value::Null,
            allocations: vec![],
        };
        let s = state_of(plan, i).unwrap_or(&blank);
        let (got, _) = insert_with_id!(
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
                "updated_at"
            ],
            s.django_id,
            |q| q
                .bind(m.features[i])
                .bind(environment)
                .bind(s.enabled)
                .bind(encode_value(&s.value))
                .bind(allocations(s, &m.options[i]))
                .bind(state_uuid(s))
                .bind(now)
        );
        warn_django(
            &mut warnings,
            &format!("feature state of {:?}", f.name),
            s,
            got,
        );
    }
    plan.warnings.extend(warnings);
    Ok(())
}

pub(super) async fn overrides(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &mut Plan,
    m: &Mapped,
    segments: &[i64],
    environment: i64,
) -> Result<()> {
    clear(tx, "segment_overrides", environment).await?;
    let now = now_ms();
    let mut warnings = Vec::new();
    for (seg, &segment_id) in plan.segments.iter().zip(segments) {
        for (priority, s) in &seg.overrides {
            let (got, _) = insert_with_id!(
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
                    "updated_at"
                ],
                s.django_id,
                |q| q
                    .bind(m.features[s.feature])
                    .bind(segment_id)
                    .bind(environment)
                    .bind(*priority)
                    .bind(s.enabled)
                    .bind(encode_value(&s.value))
                    .bind(allocations(s, &m.options[s.feature]))
                    .bind(state_uuid(s))
                    .bind(now)
            );
            let what = format!(
                "override of {:?} for segment {:?}",
                plan.features[s.feature].name, seg.name
            );
            warn_django(&mut warnings, &what, s, got);
        }
    }
    plan.warnings.extend(warnings);
    Ok(())
}

pub(super) async fn identity_overrides(
    tx: &mut Tx,
    plan: &Plan,
    m: &Mapped,
    environment: i64,
) -> Result<()> {
    clear(tx, "identity_overrides", environment).await?;
    let now = now_ms();
    for identity in &plan.identities {
        let id: Option<i64> = sql!(&mut *tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO identities (environment_id, identifier, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (environment_id, identifier) DO UPDATE SET identifier = excluded.identifier \
                 RETURNING id",
            )
            .bind(environment).bind(&identity.identifier).bind(now).fetch_optional(c).await?
        });
        let identity_id = id.ok_or_else(|| StoreError::Corrupt {
            what: "identities",
            detail: "upsert returned no row".into(),
        })?;
        for (feature, enabled, value, uuid) in &identity.overrides {
            let uuid = uuid
                .as_deref()
                .and_then(|u| uuid::Uuid::parse_str(u).ok())
                .unwrap_or_else(uuid::Uuid::new_v4);
            sql!(&mut *tx, |c| {
                sqlx::query(
                    "INSERT INTO identity_overrides (identity_id, feature_id, environment_id, enabled, \
                         value, uuid, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(identity_id).bind(m.features[*feature]).bind(environment).bind(*enabled)
                .bind(encode_value(value)).bind(uuid.to_string()).bind(now)
                .execute(c).await?.rows_affected()
            });
        }
    }
    Ok(())
}
