//! Organisation API keys (Flagsmith's "master API keys"): credentials for scripts and tools
//! acting for one organisation. An admin key holds everything in its organisation; any other
//! key holds only what is granted to it (see [`super::grants::of_key`]). A row holds the key's
//! prefix (its first characters: shown in lists, used to find the row) and its SHA-256, never
//! the key. Revoking keeps the row (lists and the audit log still name it) and the very next
//! request with the key is refused.

use serde::Serialize;

use crate::organisations::validate_name;
use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

/// Longest key name accepted.
pub const MAX_KEY_NAME_CHARS: usize = 200;
/// `last_used_at` is written at most this often per key, so using a key is not a write per
/// request.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// A key as listed: never the key itself.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: i64,
    /// The key's first characters, to tell keys apart; `DELETE …/master-api-keys/{prefix}/`.
    pub prefix: String,
    pub name: String,
    /// Acts as an organisation `ADMIN`; otherwise holds only what is granted to it.
    pub is_admin: bool,
    /// Unix ms.
    pub created_at: i64,
    /// The user who created the key, if one did.
    pub created_by: Option<i64>,
    /// The key is refused from this time on (Unix ms); null: never expires.
    pub expires_at: Option<i64>,
    /// Last time the key authenticated a request (Unix ms, to the minute).
    pub last_used_at: Option<i64>,
    pub revoked: bool,
    /// When it was revoked (Unix ms).
    pub revoked_at: Option<i64>,
    pub has_expired: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    prefix: String,
    name: String,
    is_admin: bool,
    created_at: i64,
    created_by: Option<i64>,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl Row {
    fn into_key(self, now: i64) -> ApiKey {
        ApiKey {
            id: self.id,
            prefix: self.prefix,
            name: self.name,
            is_admin: self.is_admin,
            created_at: self.created_at,
            created_by: self.created_by,
            has_expired: self.expires_at.is_some_and(|e| e <= now),
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked: self.revoked_at.is_some(),
            revoked_at: self.revoked_at,
        }
    }
}

const COLUMNS: &str =
    "id, prefix, name, is_admin, created_at, created_by, expires_at, last_used_at, revoked_at";

/// What authenticating a presented key needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyOwner {
    pub id: i64,
    pub organisation_id: i64,
    pub name: String,
    pub is_admin: bool,
    pub secret_hash: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl KeyOwner {
    /// Whether the key may be used at `now` (its hash already verified).
    pub fn usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A new key: its name, and the lookup and hash of the secret made for it.
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub is_admin: bool,
    pub expires_at: Option<i64>,
    pub created_by: Option<i64>,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
}

fn validate_key_name(name: &str) -> Result<String> {
    let n = validate_name("name", name)?;
    if n.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(StoreError::invalid(
            "name",
            format!("must be at most {MAX_KEY_NAME_CHARS} characters"),
        ));
    }
    Ok(n)
}

pub async fn create(
    ch: &mut Change,
    organisation_id: i64,
    new: &NewApiKey<'_>,
    now: i64,
) -> Result<ApiKey> {
    let name = validate_key_name(new.name)?;
    if new.expires_at.is_some_and(|e| e <= now) {
        return Err(StoreError::invalid("expires_at", "must be in the future"));
    }
    let row: Row = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO api_keys (organisation_id, name, prefix, secret_hash, is_admin, \
                 created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(organisation_id)
        .bind(&name)
        .bind(new.prefix)
        .bind(new.secret_hash)
        .bind(new.is_admin)
        .bind(new.created_by)
        .bind(now)
        .bind(new.expires_at)
        .fetch_one(c)
        .await?
    });
    let key = row.into_key(now);
    ch.audit_in_organisation(
        organisation_id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "created",
            resource_type: "api_key",
            resource_id: key.id.to_string(),
            log: format!(
                "Organisation API key '{}' ({}…) created{}",
                key.name,
                key.prefix,
                if key.is_admin { " as admin" } else { "" }
            ),
            before: None,
            after: Some(serde_json::json!({
                "name": key.name, "prefix": key.prefix, "is_admin": key.is_admin,
                "expires_at": key.expires_at,
            })),
        },
    );
    Ok(key)
}

/// The organisation's keys, revoked ones included, newest first.
pub async fn list(tx: &mut Tx, organisation_id: i64, now: i64) -> Result<Vec<ApiKey>> {
    let rows: Vec<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE organisation_id = $1 ORDER BY id DESC"
        ))
        .bind(organisation_id)
        .fetch_all(c)
        .await?
    });
    Ok(rows.into_iter().map(|r| r.into_key(now)).collect())
}

/// One key of the organisation, by prefix.
pub async fn get(tx: &mut Tx, organisation_id: i64, prefix: &str, now: i64) -> Result<ApiKey> {
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE organisation_id = $1 AND prefix = $2"
        ))
        .bind(organisation_id)
        .bind(prefix)
        .fetch_optional(c)
        .await?
    });
    Ok(row.ok_or(StoreError::not_found("API key"))?.into_key(now))
}

/// One key of the organisation, by id (for grants to keys).
pub async fn get_by_id(tx: &mut Tx, organisation_id: i64, id: i64, now: i64) -> Result<ApiKey> {
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE organisation_id = $1 AND id = $2"
        ))
        .bind(organisation_id)
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    Ok(row.ok_or(StoreError::not_found("API key"))?.into_key(now))
}

/// Revokes a key (already revoked: no change). Requests with it are refused from now on.
pub async fn revoke(
    ch: &mut Change,
    organisation_id: i64,
    prefix: &str,
    now: i64,
) -> Result<ApiKey> {
    let key = get(ch.tx(), organisation_id, prefix, now).await?;
    if key.revoked {
        return Ok(key);
    }
    sql!(ch.tx(), |c| {
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
            .bind(key.id)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.audit_in_organisation(
        organisation_id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "deleted",
            resource_type: "api_key",
            resource_id: key.id.to_string(),
            log: format!(
                "Organisation API key '{}' ({}…) revoked",
                key.name, key.prefix
            ),
            before: Some(serde_json::json!({"name": key.name, "prefix": key.prefix})),
            after: None,
        },
    );
    get(ch.tx(), organisation_id, prefix, now).await
}

/// The key with this prefix, for authentication. The caller verifies the hash and
/// [`KeyOwner::usable`].
pub async fn find(tx: &mut Tx, prefix: &str) -> Result<Option<KeyOwner>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, organisation_id, name, is_admin, secret_hash, expires_at, last_used_at, \
                 revoked_at FROM api_keys WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(c)
        .await?
    }))
}

/// Whether `last_used_at` is stale enough to be written again.
pub fn needs_touch(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS)
}

/// Records that the key was used.
pub async fn touch(tx: &mut Tx, id: i64, now: i64) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}
