//! Segments: named sets of rules over identity traits, owned by a project. Every environment
//! document of the project carries every segment, so each change here republishes them all.
//! Rules are validated in [`rules`]; per-environment overrides live in [`overrides`].

mod override_body;
pub mod overrides;
mod priorities;
pub mod rules;
mod text;
mod version_apply;
mod version_diff;
pub mod versions;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::unique_as_conflict;
use crate::organisations::{double_option, validate_name};
use crate::{
    clock::now_ms, list_window, projects, sql, AuditEntry, Change, LimitName, Limits, ListOf, Page,
    PageRequest, Result, StoreError, Tx,
};
pub use flagstone_engine::Operator;
pub use rules::{Condition, RuleType, SegmentRule};
pub use version_diff::{
    ConditionAt, ConditionChange, RuleAt, RuleChange, SegmentDiff, SegmentFieldChange,
};
pub use versions::{SegmentDefinition, SegmentVersion, SegmentVersionDetail, SegmentVersionKind};

/// Longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    pub id: i64,
    /// Stable across renames; Flagsmith clients address the object by it (`get-by-uuid`).
    pub uuid: String,
    pub project: i64,
    pub name: String,
    pub description: Option<String>,
    pub rules: Vec<SegmentRule>,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct SegmentRow {
    id: i64,
    uuid: String,
    project_id: i64,
    name: String,
    description: Option<String>,
    rules: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<SegmentRow> for Segment {
    type Error = StoreError;
    fn try_from(r: SegmentRow) -> Result<Segment> {
        Ok(Segment {
            rules: decode_rules(&r.rules)?,
            id: r.id,
            uuid: r.uuid,
            project: r.project_id,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Reads the stored `segments.rules` column (see [`crate::values`]).
pub fn decode_rules(s: &str) -> Result<Vec<SegmentRule>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: "segments.rules",
        detail: e.to_string(),
    })
}

fn encode_rules(rules: &[SegmentRule]) -> String {
    serde_json::to_string(rules).expect("rules serialize")
}

/// A new segment, or a full replacement (PUT).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `[{"type": "ALL"|"ANY"|"NONE", "rules": [...], "conditions": [{operator, property, value}]}]`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<SegmentRule>))]
    pub rules: Value,
    /// Accepted for Flagsmith compatibility; must be the project of the path when given.
    #[serde(default)]
    pub project: Option<i64>,
    /// Read-only fields of `SegmentSerializer` that Flagsmith's clients send back after a GET
    /// (`id`, `uuid`, `created_at`, `updated_at`, `version_of`, `membership_counts`,
    /// `managed_by`): ignored, as Flagsmith ignores them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub created_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub version_of: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub membership_counts: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub managed_by: Option<serde::de::IgnoredAny>,
    /// Flagsmith's feature-specific segments: only `null` is accepted (Flagstone's segments
    /// belong to the project).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub feature: Option<Value>,
    /// Flagsmith's segment metadata: only `null` or `[]` is accepted.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SegmentPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    /// Replaces all rules when given.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<SegmentRule>>))]
    pub rules: Option<Value>,
    /// Accepted for Flagsmith compatibility; must be the project of the path when given.
    #[serde(default)]
    pub project: Option<i64>,
    /// Read-only fields of `SegmentSerializer` that Flagsmith's clients send back after a GET
    /// (`id`, `uuid`, `created_at`, `updated_at`, `version_of`, `membership_counts`,
    /// `managed_by`): ignored, as Flagsmith ignores them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub created_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub version_of: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub membership_counts: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub managed_by: Option<serde::de::IgnoredAny>,
    /// Flagsmith's feature-specific segments: only `null` is accepted (Flagstone's segments
    /// belong to the project).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub feature: Option<Value>,
    /// Flagsmith's segment metadata: only `null` or `[]` is accepted.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub metadata: Option<Value>,
}

const COLUMNS: &str = "id, uuid, project_id, name, description, rules, created_at, updated_at";

fn validate_description(d: Option<&str>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(StoreError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        _ => Ok(d.map(str::to_string)),
    }
}

/// Refuses what Flagsmith's segment bodies can carry but Flagstone's segments do not have: a
/// segment tied to one feature, and segment metadata.
fn check_unsupported(feature: Option<&Value>, metadata: Option<&Value>) -> Result<()> {
    if feature.is_some_and(|f| !f.is_null()) {
        return Err(StoreError::invalid(
            "feature",
            "feature-specific segments are not supported; leave `feature` out or null",
        ));
    }
    match metadata {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(_) => Err(StoreError::invalid(
            "metadata",
            "segment metadata is not supported; leave `metadata` out, null or []",
        )),
    }
}

fn check_project_field(project_id: i64, given: Option<i64>) -> Result<()> {
    match given {
        Some(p) if p != project_id => Err(StoreError::invalid(
            "project",
            "does not match the project in the path",
        )),
        _ => Ok(()),
    }
}

pub async fn create(ch: &mut Change, project_id: i64, new: &NewSegment) -> Result<Segment> {
    check_project_field(project_id, new.project)?;
    check_unsupported(new.feature.as_ref(), new.metadata.as_ref())?;
    let limits: Limits = projects::limits(ch.tx(), project_id).await?;
    let name = validate_name("name", &new.name)?;
    let description = validate_description(new.description.as_deref())?;
    let rules = rules::parse_rules(&new.rules, &limits)?;
    // Row-lock the project so concurrent creates count its segments one after another on
    // PostgreSQL; SQLite already serialises writers.
    sql!(ch.tx(), |c| {
        sqlx::query("UPDATE projects SET name = name WHERE id = $1")
            .bind(project_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    let count: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM segments WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(c)
            .await?
    });
    Limits::check(
        LimitName::MaxSegments,
        limits.max_segments,
        count + 1,
        || format!("the project already has {count} segments"),
    )?;
    let now = now_ms();
    let row: SegmentRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO segments (project_id, name, description, rules, created_at, updated_at, \
                 uuid) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(project_id)
        .bind(&name)
        .bind(&description)
        .bind(encode_rules(&rules))
        .bind(now)
        .bind(uuid::Uuid::new_v4().to_string())
        .fetch_one(c)
        .await
        .map_err(name_conflict())?
    });
    let segment = Segment::try_from(row)?;
    versions::record(
        ch,
        project_id,
        segment.id,
        versions::SegmentVersionKind::Created,
        None,
        &SegmentDefinition::of(&segment),
    )
    .await?;
    ch.touch_project(project_id);
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "created",
        resource_type: "segment",
        resource_id: segment.id.to_string(),
        log: format!("Segment '{}' created", segment.name),
        before: None,
        after: serde_json::to_value(&segment).ok(),
    });
    Ok(segment)
}

fn name_conflict() -> impl FnOnce(sqlx::Error) -> StoreError {
    unique_as_conflict("name", "a segment with this name exists in the project")
}

/// A segment of `project_id` (not found when it belongs to another project).
pub async fn get(tx: &mut Tx, project_id: i64, id: i64) -> Result<Segment> {
    let row: Option<SegmentRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM segments WHERE id = $1 AND project_id = $2"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("segment"))?.try_into()
}

/// The project's segments ordered by id; 404 when the project does not exist.
pub async fn list(tx: &mut Tx, project_id: i64, page: PageRequest) -> Result<Page<Segment>> {
    projects::get(tx, project_id).await?;
    let of = ListOf::new("segments", COLUMNS, "project_id", "id");
    list_window::<SegmentRow>(tx, of, project_id, page)
        .await?
        .try_map(Segment::try_from)
}

/// Replaces a segment's name, description and rules (PUT).
pub async fn replace(
    ch: &mut Change,
    project_id: i64,
    id: i64,
    new: &NewSegment,
) -> Result<Segment> {
    check_project_field(project_id, new.project)?;
    check_unsupported(new.feature.as_ref(), new.metadata.as_ref())?;
    let patch = SegmentPatch {
        name: Some(new.name.clone()),
        description: Some(new.description.clone()),
        rules: Some(new.rules.clone()),
        ..Default::default()
    };
    update(ch, project_id, id, &patch).await
}

/// Updates the fields given (PATCH); `rules`, when given, replaces all rules.
pub async fn update(
    ch: &mut Change,
    project_id: i64,
    id: i64,
    patch: &SegmentPatch,
) -> Result<Segment> {
    update_recorded(ch, project_id, id, patch, None).await
}

/// [`update`], versioned as a restore of `restored_from` when given.
async fn update_recorded(
    ch: &mut Change,
    project_id: i64,
    id: i64,
    patch: &SegmentPatch,
    restored_from: Option<i64>,
) -> Result<Segment> {
    check_project_field(project_id, patch.project)?;
    check_unsupported(patch.feature.as_ref(), patch.metadata.as_ref())?;
    versions::track(ch, project_id, id).await?;
    let before = get(ch.tx(), project_id, id).await?;
    let limits = projects::limits(ch.tx(), project_id).await?;
    let name = match &patch.name {
        Some(n) => validate_name("name", n)?,
        None => before.name.clone(),
    };
    let description = match &patch.description {
        Some(d) => validate_description(d.as_deref())?,
        None => before.description.clone(),
    };
    let rules = match &patch.rules {
        Some(v) => rules::parse_rules(v, &limits)?,
        None => before.rules.clone(),
    };
    let row: SegmentRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE segments SET name = $2, description = $3, rules = $4, updated_at = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&name)
        .bind(&description)
        .bind(encode_rules(&rules))
        .bind(now_ms())
        .fetch_one(c)
        .await
        .map_err(name_conflict())?
    });
    let after = Segment::try_from(row)?;
    let kind = match restored_from {
        Some(_) => versions::SegmentVersionKind::Restore,
        None => versions::SegmentVersionKind::Change,
    };
    versions::record(
        ch,
        project_id,
        id,
        kind,
        restored_from,
        &SegmentDefinition::of(&after),
    )
    .await?;
    ch.touch_project(project_id);
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "updated",
        resource_type: "segment",
        resource_id: id.to_string(),
        log: format!("Segment '{}' updated", after.name),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}

/// Deletes a segment and, by cascade, its overrides in every environment.
pub async fn delete(ch: &mut Change, project_id: i64, id: i64) -> Result<Segment> {
    versions::track(ch, project_id, id).await?;
    let before = get(ch.tx(), project_id, id).await?;
    // The features whose overrides go with the segment get a version.
    let pairs: Vec<(i64, i64)> = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "SELECT DISTINCT environment_id, feature_id FROM segment_overrides \
             WHERE segment_id = $1",
        )
        .bind(id)
        .fetch_all(c)
        .await?
    });
    for (environment_id, feature_id) in pairs {
        crate::history::track(ch, environment_id, feature_id).await?;
    }
    crate::webhooks::events::capture_segment_deletion(ch, id).await?;
    let overrides: i64 = sql!(ch.tx(), |c| {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM segment_overrides WHERE segment_id = $1")
                .bind(id)
                .fetch_one(&mut *c)
                .await?;
        // Deleted explicitly rather than trusting the foreign key cascade alone, so the
        // outcome does not depend on SQLite's foreign_keys pragma.
        sqlx::query("DELETE FROM segment_overrides WHERE segment_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM segments WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?;
        n
    });
    versions::record(
        ch,
        project_id,
        id,
        versions::SegmentVersionKind::Deleted,
        None,
        &SegmentDefinition::of(&before),
    )
    .await?;
    ch.touch_project(project_id);
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "deleted",
        resource_type: "segment",
        resource_id: id.to_string(),
        log: format!(
            "Segment '{}' deleted with its {overrides} segment override(s)",
            before.name
        ),
        before: serde_json::to_value(&before).ok(),
        after: None,
    });
    Ok(before)
}
