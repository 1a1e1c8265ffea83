//! Organisations: the top of the hierarchy. Also home of small validation helpers shared by
//! every entity module.

use flagstone_access::Visibility;
use serde::{Deserialize, Serialize};

use crate::error::unique_as_conflict;
use crate::scopes::{visible_sql, Placed};
use crate::{clock::now_ms, sql, AuditEntry, Change, Page, PageRequest, Result, StoreError, Tx};

pub const MAX_NAME_CHARS: usize = 2_000;

/// Trims a name and checks it is non-empty, of sane length and displays as what it is
/// ([`crate::text`]).
pub fn validate_name(field: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StoreError::invalid(field, "must not be blank"));
    }
    crate::text::refuse_deceptive(field, name)?;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::invalid(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// Deserializes a field that may be absent (no change), null (clear) or a value (set).
pub fn double_option<'de, T, D>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organisation {
    pub id: i64,
    /// Stable across renames; Flagsmith clients address the object by it (`get-by-uuid`).
    pub uuid: String,
    pub name: String,
    pub stop_serving_flags: bool,
    pub persist_trait_data: bool,
    pub feature_analytics: bool,
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
pub struct NewOrganisation {
    pub name: String,
    #[serde(default)]
    pub stop_serving_flags: bool,
    #[serde(default = "yes")]
    pub persist_trait_data: bool,
    #[serde(default)]
    pub feature_analytics: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrganisationPatch {
    pub name: Option<String>,
    pub stop_serving_flags: Option<bool>,
    pub persist_trait_data: Option<bool>,
    pub feature_analytics: Option<bool>,
}

const COLUMNS: &str =
    "id, uuid, name, stop_serving_flags, persist_trait_data, feature_analytics, created_at";

pub async fn create(ch: &mut Change, new: &NewOrganisation) -> Result<Organisation> {
    let name = validate_name("name", &new.name)?;
    let org: Organisation = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO organisations (name, stop_serving_flags, persist_trait_data, \
                 feature_analytics, created_at, uuid) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {COLUMNS}"
        ))
        .bind(&name)
        .bind(new.stop_serving_flags)
        .bind(new.persist_trait_data)
        .bind(new.feature_analytics)
        .bind(now_ms())
        .bind(uuid::Uuid::new_v4().to_string())
        .fetch_one(c)
        .await?
    });
    ch.audit_in_organisation(
        org.id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "created",
            resource_type: "organisation",
            resource_id: org.id.to_string(),
            log: format!("Organisation '{}' created", org.name),
            before: None,
            after: serde_json::to_value(&org).ok(),
        },
    );
    Ok(org)
}

pub async fn get(tx: &mut Tx, id: i64) -> Result<Organisation> {
    let row: Option<Organisation> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM organisations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("organisation"))
}

pub async fn list(tx: &mut Tx, page: PageRequest) -> Result<Page<Organisation>> {
    list_visible(tx, &Visibility::everything(), page).await
}

/// The organisations `visible` lets a caller see.
pub async fn list_visible(
    tx: &mut Tx,
    visible: &Visibility,
    page: PageRequest,
) -> Result<Page<Organisation>> {
    let visible = visible_sql(
        visible,
        Placed {
            organisation: Some("id"),
            project: None,
            environment: None,
        },
    );
    let count: i64 = sql!(tx, |c| {
        sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM organisations WHERE {visible}"
        ))
        .fetch_one(c)
        .await?
    });
    let results = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM organisations WHERE {visible} ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}

/// Updates an organisation. Its flags (`stop_serving_flags`, `persist_trait_data`) are in every
/// document of the organisation, so every environment is republished.
pub async fn update(ch: &mut Change, id: i64, patch: &OrganisationPatch) -> Result<Organisation> {
    let before = get(ch.tx(), id).await?;
    let name = match &patch.name {
        Some(n) => validate_name("name", n)?,
        None => before.name.clone(),
    };
    let after: Organisation = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE organisations SET name = $2, stop_serving_flags = $3, persist_trait_data = $4, \
                 feature_analytics = $5 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&name)
        .bind(
            patch
                .stop_serving_flags
                .unwrap_or(before.stop_serving_flags),
        )
        .bind(
            patch
                .persist_trait_data
                .unwrap_or(before.persist_trait_data),
        )
        .bind(patch.feature_analytics.unwrap_or(before.feature_analytics))
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict("name", "already exists"))?
    });
    let projects: Vec<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT id FROM projects WHERE organisation_id = $1")
            .bind(id)
            .fetch_all(c)
            .await?
    });
    for p in projects {
        ch.touch_project(p);
    }
    ch.audit_in_organisation(
        id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "updated",
            resource_type: "organisation",
            resource_id: id.to_string(),
            log: format!("Organisation '{}' updated", after.name),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
        },
    );
    Ok(after)
}
