//! API tokens and browser sessions of users. A row holds the token's lookup (its first
//! characters) and its SHA-256, never the token; expiry is absolute. Revoking deletes the row,
//! so the next request presenting it fails.

use crate::{sql, Result, Tx};

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `Authorization: Token …`, from `POST /auth/login/` or sign-up.
    Api,
    /// The browser's `flagstone_session` cookie.
    Session,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }
}

/// A stored token with the user it belongs to, for authenticating a request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenOwner {
    pub token_id: i64,
    pub secret_hash: String,
    pub expires_at: i64,
    pub user_id: i64,
    pub email: String,
    pub is_superuser: bool,
    pub is_active: bool,
}

pub async fn insert(
    tx: &mut Tx,
    user_id: i64,
    kind: TokenKind,
    lookup: &str,
    secret_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<i64> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO auth_tokens (user_id, kind, lookup, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user_id)
        .bind(kind.as_str())
        .bind(lookup)
        .bind(secret_hash)
        .bind(now)
        .bind(expires_at)
        .fetch_one(c)
        .await?
    }))
}

/// The token of this kind with this lookup, and its user. The caller verifies the hash and
/// the expiry.
pub async fn find(tx: &mut Tx, kind: TokenKind, lookup: &str) -> Result<Option<TokenOwner>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT t.id AS token_id, t.secret_hash, t.expires_at, u.id AS user_id, u.email, \
                 u.is_superuser, u.is_active \
             FROM auth_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.lookup = $1 AND t.kind = $2",
        )
        .bind(lookup)
        .bind(kind.as_str())
        .fetch_optional(c)
        .await?
    }))
}

/// Revokes one token; false if it was already gone.
pub async fn revoke(tx: &mut Tx, token_id: i64) -> Result<bool> {
    let n = sql!(tx, |c| {
        sqlx::query("DELETE FROM auth_tokens WHERE id = $1")
            .bind(token_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(n > 0)
}

/// Revokes every token and session of a user (after a password change); returns how many.
pub async fn revoke_all(tx: &mut Tx, user_id: i64) -> Result<u64> {
    Ok(sql!(tx, |c| {
        sqlx::query("DELETE FROM auth_tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(c)
            .await?
            .rows_affected()
    }))
}

/// Deletes expired tokens (they are refused anyway; this keeps the table small).
pub async fn delete_expired(tx: &mut Tx, now: i64) -> Result<u64> {
    Ok(sql!(tx, |c| {
        sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    }))
}
