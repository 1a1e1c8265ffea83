//! Applying segment versions: restoring an old definition as a new change, and versioning
//! what an import's wholesale rewrite of a project's segments did (see [`super::versions`]).

use super::versions::{
    get_version, last_definition, record, segment_ids, track, SegmentDefinition, SegmentVersionKind,
};
use super::{get, update_recorded, Segment, SegmentPatch};
use crate::{sql, AuditEntry, Change, Result, StoreError};

/// The project's segments, each tracked (locked, with a baseline where needed), before a
/// write that rewrites them outside the segment write paths (an import). Pass the answer to
/// [`after_rewrite`].
pub(crate) async fn before_rewrite(ch: &mut Change, project_id: i64) -> Result<Vec<i64>> {
    let ids = segment_ids(ch.tx(), project_id).await?;
    for &id in &ids {
        track(ch, project_id, id).await?;
    }
    Ok(ids)
}

/// Versions what a rewrite did to the project's segments, as made by the change's actor: a
/// `created` version for a new segment, a `change` for one whose definition differs from its
/// last version, a `deleted` one for a segment of `before` that is gone.
pub(crate) async fn after_rewrite(ch: &mut Change, project_id: i64, before: &[i64]) -> Result<()> {
    let now = segment_ids(ch.tx(), project_id).await?;
    for &id in &now {
        let definition = SegmentDefinition::of(&get(ch.tx(), project_id, id).await?);
        let kind = if !before.contains(&id) {
            SegmentVersionKind::Created
        } else if last_definition(ch.tx(), id).await?.as_ref() != Some(&definition) {
            SegmentVersionKind::Change
        } else {
            continue;
        };
        record(ch, project_id, id, kind, None, &definition).await?;
    }
    for &id in before.iter().filter(|id| !now.contains(id)) {
        if let Some(last) = last_definition(ch.tx(), id).await? {
            record(ch, project_id, id, SegmentVersionKind::Deleted, None, &last).await?;
        }
    }
    Ok(())
}

/// Applies version `version`'s definition to the segment as a new change made by `ch`'s actor:
/// validated as a PUT is (name, rules, the project's limits), audited, published, and recorded
/// as a version of kind `restore`. A version of a segment that has since been deleted cannot
/// be restored (`conflict`).
pub async fn restore(ch: &mut Change, project_id: i64, id: i64, version: i64) -> Result<Segment> {
    let (v, target) = get_version(ch.tx(), project_id, id, version).await?;
    let exists: Option<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT id FROM segments WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .fetch_optional(c)
            .await?
    });
    if exists.is_none() {
        return Err(StoreError::conflict(
            "segment",
            format!(
                "segment {id} has been deleted; its versions can be read but not restored \
                 (create a new segment with version {version}'s definition instead)"
            ),
        ));
    }
    let patch = SegmentPatch {
        name: Some(target.name.clone()),
        description: Some(target.description.clone()),
        rules: Some(
            serde_json::to_value(&target.rules).map_err(|e| StoreError::Corrupt {
                what: "segment_versions.definition",
                detail: e.to_string(),
            })?,
        ),
        ..Default::default()
    };
    let segment = update_recorded(ch, project_id, id, &patch, Some(v.id)).await?;
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "restored",
        resource_type: "segment",
        resource_id: id.to_string(),
        log: format!(
            "Segment '{}' restored to version {} (revision {})",
            segment.name, v.id, v.revision
        ),
        before: None,
        after: serde_json::to_value(&target).ok(),
    });
    Ok(segment)
}
