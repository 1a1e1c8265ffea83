//! The order of a feature's segment overrides in an environment: lower `priority` wins, and
//! priorities are kept dense (0, 1, 2…) so "move to position n" means what it says. The main
//! entry points are [`reorder`] (Flagsmith's bulk `update-priorities`) and [`renumber`].

use std::collections::HashSet;

use serde::Deserialize;

use super::overrides::{get_by_id, OverrideRow, SegmentOverride, COLUMNS};
use crate::{clock::now_ms, environments, sql, AuditEntry, Change, Result, StoreError, Tx};

/// One entry of a bulk re-ordering.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriorityUpdate {
    pub id: i64,
    pub priority: i64,
}

/// Sets the priorities of many overrides at once (Flagsmith's `update-priorities`): every id
/// must exist, all in one environment; each affected feature's overrides are then renumbered densely, the listed ones
/// winning ties. One audit entry, "Segment overrides re-ordered".
pub async fn reorder(ch: &mut Change, updates: &[PriorityUpdate]) -> Result<Vec<SegmentOverride>> {
    let mut seen = HashSet::new();
    for (i, u) in updates.iter().enumerate() {
        if u.priority < 0 {
            return Err(StoreError::invalid(
                format!("[{i}].priority"),
                "must be 0 or more",
            ));
        }
        if !seen.insert(u.id) {
            return Err(StoreError::invalid(format!("[{i}].id"), "is listed twice"));
        }
    }
    let mut before = Vec::with_capacity(updates.len());
    for (i, u) in updates.iter().enumerate() {
        let row: Option<OverrideRow> = sql!(ch.tx(), |c| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM segment_overrides WHERE id = $1"
            ))
            .bind(u.id)
            .fetch_optional(c)
            .await?
        });
        let row = row
            .ok_or_else(|| StoreError::invalid(format!("[{i}].id"), "no such segment override"))?;
        let o = SegmentOverride::try_from(row)?;
        // One environment per call (as Flagsmith's UI sends it): a call that mixed them would
        // change several environments in one audited change, checked against one project.
        if let Some(first) = before
            .first()
            .filter(|f: &&SegmentOverride| f.environment != o.environment)
        {
            return Err(StoreError::invalid(
                format!("[{i}].id"),
                format!(
                    "belongs to environment {} while [0].id belongs to environment {}: \
                     update-priorities re-orders the overrides of one environment per call",
                    o.environment, first.environment
                ),
            ));
        }
        before.push(o);
    }
    let Some(first) = before.first() else {
        return Ok(Vec::new());
    };
    let env = environments::get(ch.tx(), first.environment).await?;
    let groups: HashSet<(i64, i64)> = before.iter().map(|o| (o.environment, o.feature)).collect();
    for &(environment_id, feature_id) in &groups {
        crate::history::track(ch, environment_id, feature_id).await?;
    }
    let now = now_ms();
    for u in updates {
        sql!(ch.tx(), |c| {
            sqlx::query("UPDATE segment_overrides SET priority = $2, updated_at = $3 WHERE id = $1")
                .bind(u.id)
                .bind(u.priority)
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    let ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
    for &(environment_id, feature_id) in &groups {
        renumber(ch.tx(), environment_id, feature_id, &ids, None).await?;
        ch.touch_environment(environment_id);
    }
    let mut after = Vec::with_capacity(before.len());
    for o in &before {
        after.push(get_by_id(ch.tx(), o.environment, o.id).await?);
    }
    let one_environment = groups.iter().all(|&(e, _)| e == env.id);
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: one_environment.then_some(env.id),
        action: "reordered",
        resource_type: "segment_override",
        resource_id: ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
        log: "Segment overrides re-ordered".into(),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}

/// Renumbers a feature's overrides in an environment to 0, 1, 2… keeping their order by
/// priority (ties: the overrides in `preferred` first, then by id). With `place = (id, n)`,
/// that override is moved to position `n` (or last), the others shifting around it, as
/// Flagsmith's ordered model does.
pub(super) async fn renumber(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    preferred: &[i64],
    place: Option<(i64, i64)>,
) -> Result<()> {
    let mut rows: Vec<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, priority FROM segment_overrides \
             WHERE environment_id = $1 AND feature_id = $2",
        )
        .bind(environment_id)
        .bind(feature_id)
        .fetch_all(c)
        .await?
    });
    rows.sort_by_key(|&(id, priority)| (priority, !preferred.contains(&id), id));
    let mut order: Vec<(i64, i64)> = rows;
    if let Some((moved, position)) = place {
        if let Some(at) = order.iter().position(|&(id, _)| id == moved) {
            let item = order.remove(at);
            let position = usize::try_from(position).unwrap_or(0).min(order.len());
            order.insert(position, item);
        }
    }
    for (position, &(id, priority)) in order.iter().enumerate() {
        let position = position as i64;
        if position == priority {
            continue;
        }
        sql!(tx, |c| {
            sqlx::query("UPDATE segment_overrides SET priority = $2 WHERE id = $1")
                .bind(id)
                .bind(position)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    Ok(())
}
