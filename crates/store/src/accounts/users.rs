//! User accounts. Emails are unique ignoring case (`email_key` is the trimmed, lower-cased
//! form); passwords arrive already hashed (Argon2id, see `flagstone_access::password`).

use serde::{Deserialize, Serialize};

use crate::{sql, Result, StoreError, Tx};

/// Longest email accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest first or last name accepted.
pub const MAX_NAME_CHARS: usize = 150;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// May do everything on this installation (the first user, or made so from the shell).
    pub is_superuser: bool,
    pub is_active: bool,
    /// When the account was created (Unix ms).
    pub created_at: i64,
    /// The last successful sign-in (Unix ms).
    pub last_login_at: Option<i64>,
}

/// What sign-in needs: the user and the stored hash.
#[derive(Debug, Clone)]
pub struct LoginCandidate {
    pub user: User,
    pub password_hash: Option<String>,
}

/// A new account, its password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: Option<String>,
    pub is_superuser: bool,
}

/// Changes to one's own name.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

const COLUMNS: &str =
    "id, email, first_name, last_name, is_superuser, is_active, created_at, last_login_at";

/// The form of an email that sign-in and uniqueness compare.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks an email's shape (one `@`, something on both sides, a dot in the domain, no spaces
/// or control characters) and returns it trimmed.
pub fn validate_email(email: &str) -> Result<String> {
    let e = email.trim();
    let bad = |d: &str| Err(StoreError::invalid("email", d));
    if e.is_empty() {
        return bad("must not be blank");
    }
    if e.chars().count() > MAX_EMAIL_CHARS {
        return bad(&format!("must be at most {MAX_EMAIL_CHARS} characters"));
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(e.to_string())
        }
        _ => bad("is not an email address"),
    }
}

fn validate_person_name(field: &str, name: &str) -> Result<String> {
    let n = name.trim();
    if n.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::invalid(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if n.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(n.to_string())
}

/// Creates an account. A second account with the same email (ignoring case) is a conflict.
pub async fn create(tx: &mut Tx, new: &NewUser, now: i64) -> Result<User> {
    let email = validate_email(&new.email)?;
    let first = validate_person_name("first_name", &new.first_name)?;
    let last = validate_person_name("last_name", &new.last_name)?;
    let user: User = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "INSERT INTO users (email, email_key, first_name, last_name, password_hash, \
                 is_superuser, is_active, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7) RETURNING {COLUMNS}"
        ))
        .bind(&email)
        .bind(email_key(&email))
        .bind(&first)
        .bind(&last)
        .bind(&new.password_hash)
        .bind(new.is_superuser)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(crate::error::unique_as_conflict(
            "email",
            "a user with this email already exists",
        ))?
    });
    Ok(user)
}

/// How many accounts exist.
pub async fn count(tx: &mut Tx) -> Result<i64> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(c)
            .await?
    }))
}

pub async fn get(tx: &mut Tx, id: i64) -> Result<User> {
    let row: Option<User> = sql!(tx, |c| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.ok_or(StoreError::not_found("user"))
}

pub async fn find_by_email(tx: &mut Tx, email: &str) -> Result<Option<User>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email_key = $1"))
            .bind(email_key(email))
            .fetch_optional(c)
            .await?
    }))
}

/// The account signing in with `email`, with its stored hash, if there is one.
pub async fn login_candidate(tx: &mut Tx, email: &str) -> Result<Option<LoginCandidate>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: Option<String>,
    }
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS}, password_hash FROM users WHERE email_key = $1"
        ))
        .bind(email_key(email))
        .fetch_optional(c)
        .await?
    });
    Ok(row.map(|r| LoginCandidate {
        user: r.user,
        password_hash: r.password_hash,
    }))
}

/// The stored hash of a user's password.
pub async fn password_hash(tx: &mut Tx, id: i64) -> Result<Option<String>> {
    let row: Option<Option<String>> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.ok_or(StoreError::not_found("user"))
}

/// Replaces a user's password hash. Callers revoke the user's tokens in the same transaction
/// when the password itself changed (see [`crate::accounts::tokens::revoke_all`]).
pub async fn set_password_hash(tx: &mut Tx, id: i64, hash: &str, now: i64) -> Result<()> {
    let n = sql!(tx, |c| {
        sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    });
    if n == 0 {
        return Err(StoreError::not_found("user"));
    }
    Ok(())
}

pub async fn record_login(tx: &mut Tx, id: i64, now: i64) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

pub async fn update_profile(tx: &mut Tx, id: i64, patch: &ProfilePatch) -> Result<User> {
    let before = get(tx, id).await?;
    let first = match &patch.first_name {
        Some(n) => validate_person_name("first_name", n)?,
        None => before.first_name,
    };
    let last = match &patch.last_name {
        Some(n) => validate_person_name("last_name", n)?,
        None => before.last_name,
    };
    Ok(sql!(tx, |c| {
        sqlx::query_as(&format!(
            "UPDATE users SET first_name = $2, last_name = $3 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&first)
        .bind(&last)
        .fetch_one(c)
        .await?
    }))
}

pub async fn set_superuser(tx: &mut Tx, id: i64, superuser: bool) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("UPDATE users SET is_superuser = $2 WHERE id = $1")
            .bind(id)
            .bind(superuser)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Claims the installation's bootstrap: true for exactly one caller ever, the one creating the
/// first user (by sign-up or from the shell). Concurrent claims serialise on the primary key.
pub async fn claim_bootstrap(tx: &mut Tx, now: i64) -> Result<bool> {
    if count(tx).await? > 0 {
        return Ok(false);
    }
    let n = sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO installation_bootstrap (id, created_at) VALUES (1, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}
