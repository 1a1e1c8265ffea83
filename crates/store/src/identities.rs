//! Identities of an environment, their traits and their identity overrides.
//!
//! An identity is addressed by `identifier`, unique per environment. Its traits
//! ([`traits`]) feed segment evaluation but are never published, so admin changes to identities
//! and traits write an audit entry without bumping the environment's revision. Identity overrides
//! ([`overrides`]) are served to local-evaluation SDKs with the environment document, so their
//! changes do touch the environment. [`sdk`] holds what the SDK edge calls: loading an identity
//! with everything it needs, and persisting traits it received.

pub mod overrides;
pub mod sdk;
pub mod traits;

use serde::{Deserialize, Serialize};

use crate::environments::Environment;
use crate::error::unique_as_conflict;
use crate::{clock::now_ms, sql, AuditEntry, Change, Page, PageRequest, Result, StoreError, Tx};

pub use overrides::{IdentityOverride, IdentityOverridePatch, NewIdentityOverride};
pub use sdk::{environment_limits, load_identity, persist_sdk_traits};
pub use traits::{Trait, TraitInput};

/// Characters of an identifier, at most.
pub const MAX_IDENTIFIER_CHARS: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    pub id: i64,
    pub identifier: String,
    /// The environment's id.
    #[sqlx(rename = "environment_id")]
    pub environment: i64,
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
pub struct NewIdentity {
    /// 1 to 2000 characters, unique in the environment. Kept exactly as sent (case and
    /// surrounding spaces included), as SDKs send it.
    pub identifier: String,
}

pub(crate) const COLUMNS: &str = "id, identifier, environment_id, created_at";

/// Checks an identifier is 1..=2000 characters that display as what they are
/// ([`crate::text`]). Not trimmed: SDKs address identities by the exact string.
pub fn validate_identifier(identifier: &str) -> Result<()> {
    if identifier.is_empty() {
        return Err(StoreError::invalid("identifier", "must not be empty"));
    }
    crate::text::refuse_deceptive("identifier", identifier)?;
    if identifier.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(StoreError::invalid(
            "identifier",
            format!("must be at most {MAX_IDENTIFIER_CHARS} characters"),
        ));
    }
    Ok(())
}

fn audit_entry(
    env: &Environment,
    action: &'static str,
    identity: &Identity,
    before: Option<&Identity>,
    after: Option<&Identity>,
) -> AuditEntry {
    AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action,
        resource_type: "identity",
        resource_id: identity.id.to_string(),
        log: format!("Identity '{}' {action}", identity.identifier),
        before: before.and_then(|i| serde_json::to_value(i).ok()),
        after: after.and_then(|i| serde_json::to_value(i).ok()),
    }
}

/// Creates an identity. Identities are not in the environment document: audit only.
pub async fn create(ch: &mut Change, env: &Environment, new: &NewIdentity) -> Result<Identity> {
    validate_identifier(&new.identifier)?;
    let identity: Identity = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO identities (environment_id, identifier, created_at) \
             VALUES ($1, $2, $3) RETURNING {COLUMNS}"
        ))
        .bind(env.id)
        .bind(&new.identifier)
        .bind(now_ms())
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict(
            "identifier",
            "an identity with this identifier exists in this environment",
        ))?
    });
    ch.audit(audit_entry(
        env,
        "created",
        &identity,
        None,
        Some(&identity),
    ));
    Ok(identity)
}

/// An identity of the environment; an identity of another environment is not found.
pub async fn get(tx: &mut Tx, environment_id: i64, id: i64) -> Result<Identity> {
    let row: Option<Identity> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identities WHERE id = $1 AND environment_id = $2"
        ))
        .bind(id)
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("identity"))
}

/// The identity with this identifier, if any.
pub async fn find(tx: &mut Tx, environment_id: i64, identifier: &str) -> Result<Option<Identity>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identities WHERE environment_id = $1 AND identifier = $2"
        ))
        .bind(environment_id)
        .bind(identifier)
        .fetch_optional(c)
        .await?
    }))
}

/// Identities of an environment in creation order; with `prefix`, only those whose identifier
/// starts with it (case-sensitive on both backends, unlike `LIKE`).
pub async fn list(
    tx: &mut Tx,
    environment_id: i64,
    prefix: Option<&str>,
    page: PageRequest,
) -> Result<Page<Identity>> {
    // An empty prefix matches everything (`substr(x, 1, 0) = ''`), so one query text serves
    // both cases without a NULL parameter of unknown type.
    let prefix = prefix.unwrap_or("");
    let prefix_chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    let count: i64 = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM identities \
             WHERE environment_id = $1 AND substr(identifier, 1, $2) = $3",
        )
        .bind(environment_id)
        .bind(prefix_chars)
        .bind(prefix)
        .fetch_one(c)
        .await?
    });
    let results = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identities \
             WHERE environment_id = $1 AND substr(identifier, 1, $2) = $3 \
             ORDER BY id LIMIT $4 OFFSET $5"
        ))
        .bind(environment_id)
        .bind(prefix_chars)
        .bind(prefix)
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}

/// Deletes an identity with its traits and overrides. Only when it had overrides does the
/// environment change for local-evaluation SDKs, so only then is it touched.
pub async fn delete(ch: &mut Change, env: &Environment, id: i64) -> Result<Identity> {
    let before = get(ch.tx(), env.id, id).await?;
    let overrides: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM identity_overrides WHERE identity_id = $1")
            .bind(id)
            .fetch_one(&mut *c)
            .await?
    });
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM identities WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    if overrides > 0 {
        ch.touch_environment(env.id);
    }
    ch.audit(audit_entry(env, "deleted", &before, Some(&before), None));
    Ok(before)
}
