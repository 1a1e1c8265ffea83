//! Keys: client keys (public, stored as is: they are the environment's address), server-side
//! keys (`ser.` prefix) and admin keys. Secrets are shown once and stored only as SHA-256 hashes;
//! a lookup hashes the presented key and compares hashes, so the database never holds them.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{clock::now_ms, sql, Actor, AuditEntry, Change, Result, Store, StoreError, Tx};

pub const SERVER_KEY_PREFIX: &str = "ser.";

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new client key: 22 alphanumeric characters, like Flagsmith's.
pub fn new_client_key() -> String {
    random_token(22)
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A server-side key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerKey {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub key_prefix: String,
    pub active: bool,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<i64>,
}

/// What the environment a server-side key belongs to, for authenticating SDK requests.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerKeyOwner {
    pub environment_id: i64,
    pub api_key: String,
}

/// Creates a server-side key; returns the row and the key, which is never stored or shown again.
pub async fn create_server_key(
    ch: &mut Change,
    environment_id: i64,
    project_id: i64,
    name: &str,
) -> Result<(ServerKey, String)> {
    let name = crate::organisations::validate_name("name", name)?;
    let key = format!("{SERVER_KEY_PREFIX}{}", random_token(40));
    let prefix: String = key.chars().take(8).collect();
    let now = now_ms();
    let row: ServerKey = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "INSERT INTO server_keys (environment_id, name, key_hash, key_prefix, active, created_at) \
             VALUES ($1, $2, $3, $4, TRUE, $5) \
             RETURNING id, name, key_prefix, active, created_at, expires_at",
        )
        .bind(environment_id)
        .bind(&name)
        .bind(hash_secret(&key))
        .bind(&prefix)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: Some(environment_id),
        action: "created",
        resource_type: "server_key",
        resource_id: row.id.to_string(),
        log: format!("Server-side key '{}' created", row.name),
        before: None,
        after: Some(serde_json::json!({"name": row.name, "key_prefix": row.key_prefix})),
    });
    // Server keys are not part of the document, so no revision bump.
    Ok((row, key))
}

pub async fn list_server_keys(tx: &mut Tx, environment_id: i64) -> Result<Vec<ServerKey>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, name, key_prefix, active, created_at, expires_at FROM server_keys \
             WHERE environment_id = $1 ORDER BY id",
        )
        .bind(environment_id)
        .fetch_all(c)
        .await?
    }))
}

/// Revokes (deletes) a server-side key. Edges stop accepting it on their next key refresh.
pub async fn delete_server_key(
    ch: &mut Change,
    environment_id: i64,
    project_id: i64,
    key_id: i64,
) -> Result<()> {
    let name: Option<String> = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "DELETE FROM server_keys WHERE id = $1 AND environment_id = $2 RETURNING name",
        )
        .bind(key_id)
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    });
    let name = name.ok_or(StoreError::not_found("server key"))?;
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: Some(environment_id),
        action: "deleted",
        resource_type: "server_key",
        resource_id: key_id.to_string(),
        log: format!("Server-side key '{name}' revoked"),
        before: Some(serde_json::json!({"name": name})),
        after: None,
    });
    Ok(())
}

/// Finds the environment of an active, unexpired server-side key.
pub async fn find_server_key(tx: &mut Tx, key: &str) -> Result<Option<ServerKeyOwner>> {
    let now = now_ms();
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT e.id AS environment_id, e.api_key FROM server_keys k \
             JOIN environments e ON e.id = k.environment_id \
             WHERE k.key_hash = $1 AND k.active AND (k.expires_at IS NULL OR k.expires_at > $2)",
        )
        .bind(hash_secret(key))
        .bind(now)
        .fetch_optional(c)
        .await?
    }))
}

/// An admin key that authenticates a request: its id and name go into the audit log.
pub async fn authenticate_admin(store: &Store, key: &str) -> Result<Option<Actor>> {
    let mut tx = store.read().await?;
    let row: Option<(i64, String)> = sql!(&mut tx, |c| {
        sqlx::query_as("SELECT id, name FROM admin_keys WHERE key_hash = $1 AND active")
            .bind(hash_secret(key))
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(|(id, name)| Actor::installation_key(id, &name)))
}

/// The installation key `key` (id and name), if it is one; inside the caller's transaction.
pub async fn find_admin_key(tx: &mut Tx, key: &str) -> Result<Option<(i64, String)>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as("SELECT id, name FROM admin_keys WHERE key_hash = $1 AND active")
            .bind(hash_secret(key))
            .fetch_optional(c)
            .await?
    }))
}

/// How the admin key was settled at start-up.
#[derive(Debug)]
pub enum AdminKeySetup {
    /// The given key (`FLAGSTONE_ADMIN_KEY`) is registered.
    Configured,
    /// No key existed: a new one was made; show it once.
    Generated(String),
    /// Keys exist already and none was given.
    Existing,
}

/// Registers `given` as the admin key `name` (idempotent), or creates one if there is none.
pub async fn ensure_admin_key(store: &Store, given: Option<&str>) -> Result<AdminKeySetup> {
    let mut tx = store.write().await?;
    let now = now_ms();
    let outcome = if let Some(key) = given {
        if key.len() < 16 {
            return Err(StoreError::Config(
                "the admin key must be at least 16 characters".into(),
            ));
        }
        sql!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO admin_keys (name, key_hash, active, created_at) \
                 VALUES ('configured', $1, TRUE, $2) ON CONFLICT (key_hash) DO NOTHING",
            )
            .bind(hash_secret(key))
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        });
        AdminKeySetup::Configured
    } else {
        let count: i64 = sql!(&mut tx, |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM admin_keys WHERE active")
                .fetch_one(c)
                .await?
        });
        if count > 0 {
            AdminKeySetup::Existing
        } else {
            let key = format!("adm.{}", random_token(40));
            sql!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO admin_keys (name, key_hash, active, created_at) \
                     VALUES ('generated', $1, TRUE, $2)",
                )
                .bind(hash_secret(&key))
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            });
            AdminKeySetup::Generated(key)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}
