//! Environments: addressed by their client key (`api_key`); each has a `revision` that every
//! change affecting its document bumps, and one document published per revision.

use flagstone_access::Visibility;
use serde::{Deserialize, Serialize};

use crate::organisations::{double_option, validate_name};
use crate::scopes::{visible_sql, Placed};
use crate::{
    clock::now_ms, keys, sql, AuditEntry, Change, Page, PageRequest, Result, StoreError, Tx,
};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Environment {
    pub id: i64,
    /// Stable across renames; Flagsmith clients address the object by it (`get-by-uuid`).
    pub uuid: String,
    #[sqlx(rename = "project_id")]
    pub project: i64,
    pub name: String,
    /// The client-side key: public, the environment's address in the API.
    pub api_key: String,
    pub allow_client_traits: bool,
    /// Null: use the project's setting.
    pub hide_disabled_flags: Option<bool>,
    pub hide_sensitive_data: bool,
    pub use_identity_composite_key_for_hashing: bool,
    pub use_identity_overrides_in_local_eval: bool,
    /// Approvals a change request needs before it can be committed; while set, callers without
    /// environment admin change feature states and segment overrides only through change
    /// requests (`docs/change-management.md`). Null: change requests are off.
    pub minimum_change_request_approvals: Option<i64>,
    /// Bumped by every change that affects this environment's document.
    pub revision: i64,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
    #[serde(
        rename = "created_date",
        serialize_with = "crate::clock::iso::serialize"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    pub name: String,
    pub project: i64,
    /// Keep a given client key (import from Flagsmith); generated when absent.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "yes")]
    pub allow_client_traits: bool,
    #[serde(default)]
    pub hide_disabled_flags: Option<bool>,
    #[serde(default)]
    pub hide_sensitive_data: bool,
    #[serde(default = "yes")]
    pub use_identity_composite_key_for_hashing: bool,
    #[serde(default = "yes")]
    pub use_identity_overrides_in_local_eval: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvironmentPatch {
    pub name: Option<String>,
    pub allow_client_traits: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub hide_disabled_flags: Option<Option<bool>>,
    pub hide_sensitive_data: Option<bool>,
    pub use_identity_composite_key_for_hashing: Option<bool>,
    pub use_identity_overrides_in_local_eval: Option<bool>,
    /// Null turns change requests off.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub minimum_change_request_approvals: Option<Option<i64>>,
}

/// The most approvals an environment may require.
pub const MAX_CHANGE_REQUEST_APPROVALS: i64 = 100;

const COLUMNS: &str =
    "id, uuid, project_id, name, api_key, allow_client_traits, hide_disabled_flags, \
    hide_sensitive_data, use_identity_composite_key_for_hashing, \
    use_identity_overrides_in_local_eval, minimum_change_request_approvals, revision, \
    updated_at, created_at";

fn validate_client_key(key: &str) -> Result<()> {
    let ok = (8..=100).contains(&key.len())
        && !key.starts_with(keys::SERVER_KEY_PREFIX)
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "api_key",
            "must be 8-100 characters of [A-Za-z0-9_.-] and must not start with 'ser.'",
        ))
    }
}

/// Creates an environment with a default feature state for every feature of its project.
pub async fn create(ch: &mut Change, new: &NewEnvironment) -> Result<Environment> {
    let name = validate_name("name", &new.name)?;
    crate::projects::get(ch.tx(), new.project)
        .await
        .map_err(|_| StoreError::invalid("project", "no such project"))?;
    let api_key = match &new.api_key {
        Some(k) => {
            validate_client_key(k)?;
            k.clone()
        }
        None => keys::new_client_key(),
    };
    let now = now_ms();
    let env: Environment = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO environments (project_id, name, api_key, allow_client_traits, \
                 hide_disabled_flags, hide_sensitive_data, use_identity_composite_key_for_hashing, \
                 use_identity_overrides_in_local_eval, revision, updated_at, created_at, uuid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9, $10) RETURNING {COLUMNS}"
        ))
        .bind(new.project)
        .bind(&name)
        .bind(&api_key)
        .bind(new.allow_client_traits)
        .bind(new.hide_disabled_flags)
        .bind(new.hide_sensitive_data)
        .bind(new.use_identity_composite_key_for_hashing)
        .bind(new.use_identity_overrides_in_local_eval)
        .bind(now)
        .bind(uuid::Uuid::new_v4().to_string())
        .fetch_one(c)
        .await
        .map_err(crate::error::unique_as_conflict(
            "api_key",
            "an environment with this key exists",
        ))?
    });
    let features: Vec<(i64, bool, Option<String>)> = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "SELECT id, default_enabled, initial_value FROM features WHERE project_id = $1",
        )
        .bind(new.project)
        .fetch_all(c)
        .await?
    });
    for (feature_id, enabled, value) in features {
        insert_default_state(ch.tx(), feature_id, env.id, enabled, value.as_deref(), now).await?;
    }
    ch.touch_environment(env.id);
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "created",
        resource_type: "environment",
        resource_id: env.id.to_string(),
        log: format!("Environment '{}' created", env.name),
        before: None,
        after: serde_json::to_value(&env).ok(),
    });
    Ok(env)
}

/// Inserts the environment default state of one feature (`value` is JSON text or NULL).
pub async fn insert_default_state(
    tx: &mut Tx,
    feature_id: i64,
    environment_id: i64,
    enabled: bool,
    value: Option<&str>,
    now: i64,
) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO feature_states (feature_id, environment_id, enabled, value, \
                 mv_allocations, uuid, updated_at) VALUES ($1, $2, $3, $4, '[]', $5, $6)",
        )
        .bind(feature_id)
        .bind(environment_id)
        .bind(enabled)
        .bind(value)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

pub async fn get_by_key(tx: &mut Tx, api_key: &str) -> Result<Environment> {
    let row: Option<Environment> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM environments WHERE api_key = $1"
        ))
        .bind(api_key)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("environment"))
}

pub async fn get(tx: &mut Tx, id: i64) -> Result<Environment> {
    let row: Option<Environment> = sql!(tx, |c| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM environments WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.ok_or(StoreError::not_found("environment"))
}

pub async fn list(
    tx: &mut Tx,
    project: Option<i64>,
    page: PageRequest,
) -> Result<Page<Environment>> {
    list_visible(tx, project, &Visibility::everything(), page).await
}

/// The environments (of `project`, if given) that `visible` lets a caller see.
pub async fn list_visible(
    tx: &mut Tx,
    project: Option<i64>,
    visible: &Visibility,
    page: PageRequest,
) -> Result<Page<Environment>> {
    let visible = visible_sql(
        visible,
        Placed {
            organisation: Some(
                "(SELECT p.organisation_id FROM projects p WHERE p.id = environments.project_id)",
            ),
            project: Some("project_id"),
            environment: Some("id"),
        },
    );
    let mut filter = crate::filter::Where::new()
        .bound_if(project.is_some(), "project_id = ?")
        .fixed(visible);
    let (limit, offset) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM environments WHERE {filter}")),
            project
        )
        .fetch_one(c)
        .await?
    });
    let results = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM environments WHERE {filter} \
                 ORDER BY id LIMIT {limit} OFFSET {offset}"
            )),
            project
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}

pub async fn update(
    ch: &mut Change,
    api_key: &str,
    patch: &EnvironmentPatch,
) -> Result<Environment> {
    let before = get_by_key(ch.tx(), api_key).await?;
    let name = match &patch.name {
        Some(n) => validate_name("name", n)?,
        None => before.name.clone(),
    };
    let minimum = patch
        .minimum_change_request_approvals
        .unwrap_or(before.minimum_change_request_approvals);
    if minimum.is_some_and(|m| !(0..=MAX_CHANGE_REQUEST_APPROVALS).contains(&m)) {
        return Err(StoreError::invalid(
            "minimum_change_request_approvals",
            format!("must be null (off) or 0 to {MAX_CHANGE_REQUEST_APPROVALS}"),
        ));
    }
    let after: Environment = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE environments SET name = $2, allow_client_traits = $3, hide_disabled_flags = $4, \
                 hide_sensitive_data = $5, use_identity_composite_key_for_hashing = $6, \
                 use_identity_overrides_in_local_eval = $7, \
                 minimum_change_request_approvals = $8 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(before.id)
        .bind(&name)
        .bind(patch.allow_client_traits.unwrap_or(before.allow_client_traits))
        .bind(patch.hide_disabled_flags.unwrap_or(before.hide_disabled_flags))
        .bind(patch.hide_sensitive_data.unwrap_or(before.hide_sensitive_data))
        .bind(
            patch
                .use_identity_composite_key_for_hashing
                .unwrap_or(before.use_identity_composite_key_for_hashing),
        )
        .bind(
            patch
                .use_identity_overrides_in_local_eval
                .unwrap_or(before.use_identity_overrides_in_local_eval),
        )
        .bind(minimum)
        .fetch_one(c)
        .await?
    });
    ch.touch_environment(after.id);
    ch.audit(AuditEntry {
        project_id: Some(after.project),
        environment_id: Some(after.id),
        action: "updated",
        resource_type: "environment",
        resource_id: after.id.to_string(),
        log: format!("Environment '{}' updated", after.name),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}

/// Deletes an environment with everything in it, and its publish job.
pub async fn delete(ch: &mut Change, api_key: &str) -> Result<Environment> {
    let before = get_by_key(ch.tx(), api_key).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM publish_jobs WHERE environment_id = $1")
            .bind(before.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM environments WHERE id = $1")
            .bind(before.id)
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.delete_environment(before.id);
    ch.audit(AuditEntry {
        project_id: Some(before.project),
        environment_id: Some(before.id),
        action: "deleted",
        resource_type: "environment",
        resource_id: before.id.to_string(),
        log: format!("Environment '{}' deleted", before.name),
        before: serde_json::to_value(&before).ok(),
        after: None,
    });
    Ok(before)
}
