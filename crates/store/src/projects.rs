//! Projects: own features, segments and environments, and carry the limits that bound every
//! document built from them.

use flagstone_access::Visibility;
use serde::{Deserialize, Serialize};

use crate::organisations::validate_name;
use crate::scopes::{visible_sql, Placed};
pub use crate::usage::LimitLowering;
use crate::{
    clock::now_ms, sql, AuditEntry, Change, Limits, Page, PageRequest, Result, StoreError, Tx,
};

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: i64,
    /// Stable across renames; Flagsmith clients address the object by it (`get-by-uuid`).
    pub uuid: String,
    pub organisation: i64,
    pub name: String,
    pub hide_disabled_flags: bool,
    pub enable_realtime_updates: bool,
    /// The effective limits (defaults plus this project's overrides).
    pub limits: Limits,
    /// Days a feature may be served to nobody before it is stale; null: the installation's
    /// default (`--stale-unused-days`, 30). See docs/flag-usage.md.
    pub stale_flags_limit_days: Option<i64>,
    /// Days a feature may serve one fixed value everywhere before it is stale; null: the
    /// installation's default (`--stale-fixed-value-days`, 30).
    pub stale_fixed_value_days: Option<i64>,
    #[serde(
        rename = "created_date",
        serialize_with = "crate::clock::iso::serialize"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: i64,
    uuid: String,
    organisation_id: i64,
    name: String,
    hide_disabled_flags: bool,
    enable_realtime_updates: bool,
    limits: String,
    stale_flags_limit_days: Option<i64>,
    stale_fixed_value_days: Option<i64>,
    created_at: i64,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;
    fn try_from(r: ProjectRow) -> Result<Project> {
        Ok(Project {
            id: r.id,
            uuid: r.uuid,
            organisation: r.organisation_id,
            name: r.name,
            hide_disabled_flags: r.hide_disabled_flags,
            enable_realtime_updates: r.enable_realtime_updates,
            limits: Limits::from_stored(&r.limits)?,
            stale_flags_limit_days: r.stale_flags_limit_days,
            stale_fixed_value_days: r.stale_fixed_value_days,
            created_at: r.created_at,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    pub organisation: i64,
    #[serde(default)]
    pub hide_disabled_flags: bool,
    #[serde(default)]
    pub enable_realtime_updates: bool,
    /// Limits to override, e.g. `{"max_features": 100}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub limits: Option<serde_json::Value>,
    #[serde(default)]
    pub stale_flags_limit_days: Option<i64>,
    #[serde(default)]
    pub stale_fixed_value_days: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub hide_disabled_flags: Option<bool>,
    pub enable_realtime_updates: Option<bool>,
    /// Limits to override; merged into the current ones.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub limits: Option<serde_json::Value>,
    /// `null` returns to the installation's default.
    #[serde(default, deserialize_with = "crate::organisations::double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub stale_flags_limit_days: Option<Option<i64>>,
    /// `null` returns to the installation's default.
    #[serde(default, deserialize_with = "crate::organisations::double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub stale_fixed_value_days: Option<Option<i64>>,
}

/// Days of a staleness setting: 1 to 3650 (ten years).
fn validate_stale_days(field: &str, days: Option<i64>) -> Result<Option<i64>> {
    match days {
        Some(d) if !(1..=3650).contains(&d) => Err(StoreError::invalid(
            field,
            "must be a number of days from 1 to 3650",
        )),
        other => Ok(other),
    }
}

const COLUMNS: &str =
    "id, uuid, organisation_id, name, hide_disabled_flags, enable_realtime_updates, limits, \
    stale_flags_limit_days, stale_fixed_value_days, created_at";

/// Validates a limits patch and merges it into the stored overrides object.
fn merge_limit_overrides(stored: &str, patch: &serde_json::Value) -> Result<String> {
    let current = Limits::from_stored(stored)?;
    current.merged(patch)?; // validates names and values
    let mut overrides: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stored).unwrap_or_default();
    if let Some(p) = patch.as_object() {
        for (k, v) in p {
            overrides.insert(k.clone(), v.clone());
        }
    }
    Ok(serde_json::Value::Object(overrides).to_string())
}

pub async fn create(ch: &mut Change, new: &NewProject) -> Result<Project> {
    let name = validate_name("name", &new.name)?;
    crate::organisations::get(ch.tx(), new.organisation)
        .await
        .map_err(|_| StoreError::invalid("organisation", "no such organisation"))?;
    let limits = match &new.limits {
        Some(p) => merge_limit_overrides("{}", p)?,
        None => "{}".to_string(),
    };
    let unused_days = validate_stale_days("stale_flags_limit_days", new.stale_flags_limit_days)?;
    let fixed_days = validate_stale_days("stale_fixed_value_days", new.stale_fixed_value_days)?;
    let row: ProjectRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO projects (organisation_id, name, hide_disabled_flags, \
                 enable_realtime_updates, limits, created_at, uuid, stale_flags_limit_days, \
                 stale_fixed_value_days) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(new.organisation)
        .bind(&name)
        .bind(new.hide_disabled_flags)
        .bind(new.enable_realtime_updates)
        .bind(&limits)
        .bind(now_ms())
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(unused_days)
        .bind(fixed_days)
        .fetch_one(c)
        .await?
    });
    let project = Project::try_from(row)?;
    ch.audit(AuditEntry {
        project_id: Some(project.id),
        environment_id: None,
        action: "created",
        resource_type: "project",
        resource_id: project.id.to_string(),
        log: format!("Project '{}' created", project.name),
        before: None,
        after: serde_json::to_value(&project).ok(),
    });
    Ok(project)
}

pub async fn get(tx: &mut Tx, id: i64) -> Result<Project> {
    let row: Option<ProjectRow> = sql!(tx, |c| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM projects WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.ok_or(StoreError::not_found("project"))?.try_into()
}

pub async fn list(
    tx: &mut Tx,
    organisation: Option<i64>,
    page: PageRequest,
) -> Result<Page<Project>> {
    list_visible(tx, organisation, &Visibility::everything(), page).await
}

/// The projects (of `organisation`, if given) that `visible` lets a caller see.
pub async fn list_visible(
    tx: &mut Tx,
    organisation: Option<i64>,
    visible: &Visibility,
    page: PageRequest,
) -> Result<Page<Project>> {
    let visible = visible_sql(
        visible,
        Placed {
            organisation: Some("organisation_id"),
            project: Some("id"),
            environment: None,
        },
    );
    let mut filter = crate::filter::Where::new()
        .bound_if(organisation.is_some(), "organisation_id = ?")
        .fixed(visible);
    let (limit, offset) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM projects WHERE {filter}")),
            organisation
        )
        .fetch_one(c)
        .await?
    });
    let rows: Vec<ProjectRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM projects WHERE {filter} \
                 ORDER BY id LIMIT {limit} OFFSET {offset}"
            )),
            organisation
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let results = rows
        .into_iter()
        .map(Project::try_from)
        .collect::<Result<_>>()?;
    Ok(Page { count, results })
}

/// Updates a project; its settings are in every environment document, so all are republished.
/// Lowering a limit below what the project already uses is refused unless `lowering` is
/// [`LimitLowering::Force`] (see [`crate::usage::ProjectUsage::lowered_below_use`]).
pub async fn update(
    ch: &mut Change,
    id: i64,
    patch: &ProjectPatch,
    lowering: LimitLowering,
) -> Result<Project> {
    let before = get(ch.tx(), id).await?;
    let stored: String = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT limits FROM projects WHERE id = $1")
            .bind(id)
            .fetch_one(c)
            .await?
    });
    let limits = match &patch.limits {
        Some(p) => merge_limit_overrides(&stored, p)?,
        None => stored,
    };
    let new_limits = Limits::from_stored(&limits)?;
    if lowering == LimitLowering::Refuse && new_limits != before.limits {
        let usage = crate::usage::project(ch.tx(), id).await?;
        let below = usage.lowered_below_use(&before.limits, &new_limits);
        if let Some(first) = below.first() {
            let detail: Vec<String> = below.iter().map(|b| b.describe()).collect();
            return Err(StoreError::invalid(
                format!("limits.{}", first.limit),
                detail.join("; "),
            ));
        }
    }
    let name = match &patch.name {
        Some(n) => validate_name("name", n)?,
        None => before.name.clone(),
    };
    let unused_days = match patch.stale_flags_limit_days {
        Some(d) => validate_stale_days("stale_flags_limit_days", d)?,
        None => before.stale_flags_limit_days,
    };
    let fixed_days = match patch.stale_fixed_value_days {
        Some(d) => validate_stale_days("stale_fixed_value_days", d)?,
        None => before.stale_fixed_value_days,
    };
    let row: ProjectRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE projects SET name = $2, hide_disabled_flags = $3, enable_realtime_updates = $4, \
                 limits = $5, stale_flags_limit_days = $6, stale_fixed_value_days = $7 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&name)
        .bind(patch.hide_disabled_flags.unwrap_or(before.hide_disabled_flags))
        .bind(patch.enable_realtime_updates.unwrap_or(before.enable_realtime_updates))
        .bind(&limits)
        .bind(unused_days)
        .bind(fixed_days)
        .fetch_one(c)
        .await?
    });
    let after = Project::try_from(row)?;
    ch.touch_project(id);
    ch.audit(AuditEntry {
        project_id: Some(id),
        environment_id: None,
        action: "updated",
        resource_type: "project",
        resource_id: id.to_string(),
        log: format!("Project '{}' updated", after.name),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}

/// Deletes a project and everything in it (cascade), including its environments' publish jobs.
pub async fn delete(ch: &mut Change, id: i64) -> Result<()> {
    let before = get(ch.tx(), id).await?;
    let environments: Vec<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT id FROM environments WHERE project_id = $1")
            .bind(id)
            .fetch_all(c)
            .await?
    });
    for env in environments {
        ch.delete_environment(env);
    }
    sql!(ch.tx(), |c| {
        sqlx::query(
            "DELETE FROM publish_jobs WHERE environment_id IN \
             (SELECT id FROM environments WHERE project_id = $1)",
        )
        .bind(id)
        .execute(&mut *c)
        .await?;
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    // The project row is gone when the entry is written: name its organisation explicitly.
    ch.audit_in_organisation(
        before.organisation,
        AuditEntry {
            project_id: Some(id),
            environment_id: None,
            action: "deleted",
            resource_type: "project",
            resource_id: id.to_string(),
            log: format!("Project '{}' deleted", before.name),
            before: serde_json::to_value(&before).ok(),
            after: None,
        },
    );
    Ok(())
}

/// The project's limits, read inside the change that must respect them.
pub async fn limits(tx: &mut Tx, project_id: i64) -> Result<Limits> {
    let stored: Option<String> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT limits FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(c)
            .await?
    });
    Limits::from_stored(&stored.ok_or(StoreError::not_found("project"))?)
}
