//! Identity overrides: one feature's state for one identity (`enabled`, value), stored in
//! `identity_overrides` outside the main environment document (DESIGN §4).
//!
//! Local-evaluation SDKs still receive them from the environment-document endpoint, so every
//! change here touches the environment (revision bump and publish request) and is audited.
//! Their number per environment is bounded by `max_identity_overrides`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Identity;
use crate::environments::Environment;
use crate::values::{decode_value, encode_value, validate_flag_value};
use crate::{
    clock::now_ms, list_window, sql, AuditEntry, Change, LimitName, Limits, ListOf, Page,
    PageRequest, Result, StoreError, Tx,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityOverride {
    pub id: i64,
    /// The feature's id.
    pub feature: i64,
    /// The identity's id.
    pub identity: i64,
    /// The environment's id.
    pub environment: i64,
    pub enabled: bool,
    /// A string, integer, float, boolean or null.
    pub feature_state_value: Value,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
    /// Stable id of this feature state (`featurestate_uuid` in the environment document).
    #[serde(skip)]
    pub uuid: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewIdentityOverride {
    /// A feature of the environment's project.
    pub feature: i64,
    #[serde(default)]
    pub enabled: bool,
    /// A string, integer, float, boolean or null (the default), plain or as Flagsmith's
    /// `{"type": …, "string_value": …}` object.
    #[serde(default, deserialize_with = "crate::values::typed_value")]
    pub feature_state_value: Value,
}

/// Fields to change; absent fields keep their value. `feature` may be sent (clients often send
/// the whole object back) but must name the override's own feature.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityOverridePatch {
    pub feature: Option<i64>,
    pub enabled: Option<bool>,
    /// Absent: unchanged; `null`: the value becomes null.
    #[serde(default, deserialize_with = "crate::values::typed_value_present")]
    pub feature_state_value: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct OverrideRow {
    id: i64,
    feature_id: i64,
    identity_id: i64,
    environment_id: i64,
    enabled: bool,
    value: Option<String>,
    uuid: String,
    updated_at: i64,
}

impl TryFrom<OverrideRow> for IdentityOverride {
    type Error = StoreError;
    fn try_from(r: OverrideRow) -> Result<IdentityOverride> {
        Ok(IdentityOverride {
            id: r.id,
            feature: r.feature_id,
            identity: r.identity_id,
            environment: r.environment_id,
            enabled: r.enabled,
            feature_state_value: decode_value("identity_overrides.value", r.value.as_deref())?,
            updated_at: r.updated_at,
            uuid: r.uuid,
        })
    }
}

const DUPLICATE: &str = "this identity already has an override for this feature";

const COLUMNS: &str =
    "id, feature_id, identity_id, environment_id, enabled, value, uuid, updated_at";

/// The name of a feature of the project, or `invalid` naming the `feature` field.
async fn feature_name(tx: &mut Tx, project_id: i64, feature_id: i64) -> Result<String> {
    let name: Option<String> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT name FROM features WHERE id = $1 AND project_id = $2")
            .bind(feature_id)
            .bind(project_id)
            .fetch_optional(c)
            .await?
    });
    name.ok_or_else(|| StoreError::invalid("feature", "no such feature in this project"))
}

fn audit_entry(
    env: &Environment,
    identity: &Identity,
    feature: &str,
    action: &'static str,
    before: Option<&IdentityOverride>,
    after: Option<&IdentityOverride>,
) -> AuditEntry {
    let id = before.or(after).map_or(0, |o| o.id);
    AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action,
        resource_type: "identity_override",
        resource_id: id.to_string(),
        log: format!(
            "Identity override of feature '{feature}' for identity '{}' {action}",
            identity.identifier
        ),
        before: before.and_then(|o| serde_json::to_value(o).ok()),
        after: after.and_then(|o| serde_json::to_value(o).ok()),
    }
}

/// Creates an override of `new.feature` for the identity.
pub async fn create(
    ch: &mut Change,
    env: &Environment,
    identity: &Identity,
    new: &NewIdentityOverride,
) -> Result<IdentityOverride> {
    let feature = feature_name(ch.tx(), env.project, new.feature).await?;
    let limits = crate::projects::limits(ch.tx(), env.project).await?;
    validate_flag_value("feature_state_value", &new.feature_state_value, &limits)?;
    // A duplicate is a conflict even when the environment is at its limit: say what is wrong.
    let duplicate: Option<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "SELECT id FROM identity_overrides WHERE identity_id = $1 AND feature_id = $2",
        )
        .bind(identity.id)
        .bind(new.feature)
        .fetch_optional(c)
        .await?
    });
    if duplicate.is_some() {
        return Err(StoreError::conflict("feature", DUPLICATE));
    }
    let existing: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM identity_overrides WHERE environment_id = $1")
            .bind(env.id)
            .fetch_one(c)
            .await?
    });
    Limits::check(
        LimitName::MaxIdentityOverrides,
        limits.max_identity_overrides,
        existing + 1,
        || {
            format!(
                "environment '{}' has {existing} identity overrides",
                env.name
            )
        },
    )?;
    let row: OverrideRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO identity_overrides (identity_id, feature_id, environment_id, enabled, \
                 value, uuid, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(identity.id)
        .bind(new.feature)
        .bind(env.id)
        .bind(new.enabled)
        .bind(encode_value(&new.feature_state_value))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(now_ms())
        .fetch_one(c)
        .await
        .map_err(crate::error::unique_as_conflict("feature", DUPLICATE))?
    });
    let created = IdentityOverride::try_from(row)?;
    ch.touch_environment(env.id);
    ch.audit(audit_entry(
        env,
        identity,
        &feature,
        "created",
        None,
        Some(&created),
    ));
    Ok(created)
}

/// One override of the identity; an override of another identity is not found.
pub async fn get(tx: &mut Tx, identity_id: i64, id: i64) -> Result<IdentityOverride> {
    let row: Option<OverrideRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identity_overrides WHERE id = $1 AND identity_id = $2"
        ))
        .bind(id)
        .bind(identity_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("identity override"))?
        .try_into()
}

/// Overrides of an identity, in creation order.
pub async fn list(
    tx: &mut Tx,
    identity_id: i64,
    page: PageRequest,
) -> Result<Page<IdentityOverride>> {
    let of = ListOf::new("identity_overrides", COLUMNS, "identity_id", "id");
    list_window::<OverrideRow>(tx, of, identity_id, page)
        .await?
        .try_map(IdentityOverride::try_from)
}

/// How many identity overrides the environment has (of one feature only, if given), and those
/// at `offset..offset + limit` by identity and id: one part of Flagsmith's list of every state
/// of an environment ([`crate::features::environment_states`]).
pub(crate) async fn environment_window(
    tx: &mut Tx,
    environment_id: i64,
    feature: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<IdentityOverride>)> {
    let mut filter = crate::filter::Where::new()
        .bound("environment_id = ?")
        .bound_if(feature.is_some(), "feature_id = ?");
    let (limit_p, offset_p) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM identity_overrides WHERE {filter}"
            ))
            .bind(environment_id),
            feature
        )
        .fetch_one(c)
        .await?
    });
    if limit <= 0 || offset >= count {
        return Ok((count, Vec::new()));
    }
    let rows: Vec<OverrideRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM identity_overrides WHERE {filter} \
                 ORDER BY identity_id, id LIMIT {limit_p} OFFSET {offset_p}"
            ))
            .bind(environment_id),
            feature
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await?
    });
    let results = rows
        .into_iter()
        .map(IdentityOverride::try_from)
        .collect::<Result<_>>()?;
    Ok((count, results))
}

/// Every override of an identity, ordered by feature (for evaluation).
pub async fn all(tx: &mut Tx, identity_id: i64) -> Result<Vec<IdentityOverride>> {
    let rows: Vec<OverrideRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identity_overrides WHERE identity_id = $1 ORDER BY feature_id"
        ))
        .bind(identity_id)
        .fetch_all(c)
        .await?
    });
    rows.into_iter().map(IdentityOverride::try_from).collect()
}

pub async fn update(
    ch: &mut Change,
    env: &Environment,
    identity: &Identity,
    id: i64,
    patch: &IdentityOverridePatch,
) -> Result<IdentityOverride> {
    let before = get(ch.tx(), identity.id, id).await?;
    if patch.feature.is_some_and(|f| f != before.feature) {
        return Err(StoreError::invalid(
            "feature",
            "an override's feature cannot be changed; delete it and create another",
        ));
    }
    let value = patch
        .feature_state_value
        .as_ref()
        .unwrap_or(&before.feature_state_value);
    let limits = crate::projects::limits(ch.tx(), env.project).await?;
    validate_flag_value("feature_state_value", value, &limits)?;
    let feature = feature_name(ch.tx(), env.project, before.feature).await?;
    let row: OverrideRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE identity_overrides SET enabled = $2, value = $3, updated_at = $4 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(encode_value(value))
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    let after = IdentityOverride::try_from(row)?;
    ch.touch_environment(env.id);
    ch.audit(audit_entry(
        env,
        identity,
        &feature,
        "updated",
        Some(&before),
        Some(&after),
    ));
    Ok(after)
}

pub async fn delete(
    ch: &mut Change,
    env: &Environment,
    identity: &Identity,
    id: i64,
) -> Result<IdentityOverride> {
    let before = get(ch.tx(), identity.id, id).await?;
    let feature = feature_name(ch.tx(), env.project, before.feature).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM identity_overrides WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.touch_environment(env.id);
    ch.audit(audit_entry(
        env,
        identity,
        &feature,
        "deleted",
        Some(&before),
        None,
    ));
    Ok(before)
}
