//! Invitations to an organisation: shareable **links** (reusable until they expire or are
//! deleted) and per-**email** invites (used once, by the person they were sent to). Both carry
//! the role the new member gets. The secret in the join link (Flagsmith's "hash") is stored
//! as lookup + SHA-256, like tokens: the hash is shown once, when the invite is made.

use serde::Serialize;

use super::{groups, members};
use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

/// How long an invite is valid unless told otherwise: 7 days.
pub const DEFAULT_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Most emails one `POST …/invite/` may invite.
pub const MAX_INVITES_PER_REQUEST: usize = 100;

/// What an invite is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteKind {
    Link,
    Email,
}

impl InviteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InviteKind::Link => "link",
            InviteKind::Email => "email",
        }
    }

    fn parse(s: &str) -> Option<InviteKind> {
        match s {
            "link" => Some(InviteKind::Link),
            "email" => Some(InviteKind::Email),
            _ => None,
        }
    }
}

/// An invite link as listed (its hash is shown only when it is made).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteLink {
    pub id: i64,
    /// `ADMIN` or `USER`: the role of those who join with it.
    pub role: String,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    /// The link is refused from then on.
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: i64,
}

/// An emailed invite as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailInvite {
    pub id: i64,
    pub email: String,
    pub role: String,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: i64,
    /// The user who sent it.
    pub invited_by: Option<members::Person>,
    /// Groups the new member joins.
    pub permission_groups: Vec<i64>,
}

/// A new invite: the lookup and hash of its secret, and what it grants.
pub struct NewInvite<'a> {
    pub role: flagstone_access::Role,
    pub email: Option<&'a str>,
    pub groups: &'a [i64],
    pub invited_by: Option<i64>,
    pub lookup: &'a str,
    pub secret_hash: &'a str,
    pub expires_at: i64,
}

/// An invite found by its lookup, for accepting it. The caller verifies the hash.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: i64,
    pub organisation_id: i64,
    pub kind: InviteKind,
    pub email: Option<String>,
    pub role: flagstone_access::Role,
    pub secret_hash: String,
    pub expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct EmailRow {
    id: i64,
    email: Option<String>,
    role: String,
    created_at: i64,
    expires_at: i64,
    invited_by: Option<i64>,
}

/// Makes an invite (a link, or an invite for `email`). An open invite for the same email in
/// the organisation is a conflict; an expired one is replaced.
pub async fn create(
    ch: &mut Change,
    organisation_id: i64,
    new: &NewInvite<'_>,
    now: i64,
) -> Result<i64> {
    if new.expires_at <= now {
        return Err(StoreError::invalid("expires_at", "must be in the future"));
    }
    let (kind, email, email_key) = match new.email {
        Some(e) => {
            let e = super::users::validate_email(e)?;
            let key = super::users::email_key(&e);
            (InviteKind::Email, Some(e), Some(key))
        }
        None => (InviteKind::Link, None, None),
    };
    if let Some(key) = &email_key {
        sql!(ch.tx(), |c| {
            sqlx::query(
                "DELETE FROM invites WHERE organisation_id = $1 AND email_key = $2 \
                 AND expires_at <= $3",
            )
            .bind(organisation_id)
            .bind(key)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    for &g in new.groups {
        groups::get(ch.tx(), organisation_id, g)
            .await
            .map_err(|_| {
                StoreError::invalid(
                    "permission_groups",
                    format!("group {g} is not a group of this organisation"),
                )
            })?;
    }
    let id: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "INSERT INTO invites (organisation_id, kind, email, email_key, role, lookup, \
                 secret_hash, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(organisation_id)
        .bind(kind.as_str())
        .bind(&email)
        .bind(&email_key)
        .bind(new.role.as_str())
        .bind(new.lookup)
        .bind(new.secret_hash)
        .bind(new.invited_by)
        .bind(now)
        .bind(new.expires_at)
        .fetch_one(c)
        .await
        .map_err(crate::error::unique_as_conflict(
            "email",
            "an invitation for this email is already waiting: withdraw it first",
        ))?
    });
    for &g in new.groups {
        sql!(ch.tx(), |c| {
            sqlx::query(
                "INSERT INTO invite_groups (invite_id, group_id) VALUES ($1, $2) \
                 ON CONFLICT (invite_id, group_id) DO NOTHING",
            )
            .bind(id)
            .bind(g)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    let log = match &email {
        Some(e) => format!("{e} invited as {}", new.role),
        None => format!("Invite link for {}s created", new.role),
    };
    ch.audit_in_organisation(
        organisation_id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "created",
            resource_type: if email.is_some() {
                "invite"
            } else {
                "invite_link"
            },
            resource_id: id.to_string(),
            log,
            before: None,
            after: Some(serde_json::json!({
                "email": email, "role": new.role.as_str(), "expires_at": new.expires_at,
            })),
        },
    );
    Ok(id)
}

/// The organisation's invite links, expired ones included, by id.
pub async fn list_links(tx: &mut Tx, organisation_id: i64) -> Result<Vec<InviteLink>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, role, created_at, expires_at FROM invites \
             WHERE organisation_id = $1 AND kind = 'link' ORDER BY id",
        )
        .bind(organisation_id)
        .fetch_all(c)
        .await?
    }))
}

pub async fn get_link(tx: &mut Tx, organisation_id: i64, id: i64) -> Result<InviteLink> {
    let row: Option<InviteLink> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, role, created_at, expires_at FROM invites \
             WHERE organisation_id = $1 AND kind = 'link' AND id = $2",
        )
        .bind(organisation_id)
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("invite link"))
}

async fn email_invites(
    tx: &mut Tx,
    organisation_id: i64,
    only: Option<i64>,
) -> Result<Vec<EmailInvite>> {
    let filter = crate::filter::Where::new()
        .bound("organisation_id = ?")
        .fixed("kind = 'email'")
        .bound_if(only.is_some(), "id = ?")
        .sql();
    let rows: Vec<EmailRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT id, email, role, created_at, expires_at, invited_by FROM invites \
                 WHERE {filter} ORDER BY id"
            ))
            .bind(organisation_id),
            only
        )
        .fetch_all(c)
        .await?
    });
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let invited_by: Option<members::Person> = match r.invited_by {
            Some(u) => sql!(tx, |c| {
                sqlx::query_as(
                    "SELECT id, email, first_name, last_name, last_login_at FROM users \
                     WHERE id = $1",
                )
                .bind(u)
                .fetch_optional(c)
                .await?
            }),
            None => None,
        };
        let permission_groups: Vec<i64> = sql!(tx, |c| {
            sqlx::query_scalar(
                "SELECT group_id FROM invite_groups WHERE invite_id = $1 ORDER BY group_id",
            )
            .bind(r.id)
            .fetch_all(c)
            .await?
        });
        out.push(EmailInvite {
            id: r.id,
            email: r.email.unwrap_or_default(),
            role: r.role,
            created_at: r.created_at,
            expires_at: r.expires_at,
            invited_by,
            permission_groups,
        });
    }
    Ok(out)
}

/// The organisation's emailed invites still waiting (not yet used), expired ones included.
pub async fn list_emails(tx: &mut Tx, organisation_id: i64) -> Result<Vec<EmailInvite>> {
    email_invites(tx, organisation_id, None).await
}

pub async fn get_email(tx: &mut Tx, organisation_id: i64, id: i64) -> Result<EmailInvite> {
    email_invites(tx, organisation_id, Some(id))
        .await?
        .pop()
        .ok_or(StoreError::not_found("invite"))
}

/// Withdraws an invite of either kind; its link stops working at once.
pub async fn delete(
    ch: &mut Change,
    organisation_id: i64,
    kind: InviteKind,
    id: i64,
) -> Result<()> {
    let email: Option<Option<String>> = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "DELETE FROM invites WHERE organisation_id = $1 AND kind = $2 AND id = $3 \
             RETURNING email",
        )
        .bind(organisation_id)
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    let Some(email) = email else {
        return Err(StoreError::not_found(match kind {
            InviteKind::Link => "invite link",
            InviteKind::Email => "invite",
        }));
    };
    ch.audit_in_organisation(
        organisation_id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "deleted",
            resource_type: match kind {
                InviteKind::Link => "invite_link",
                InviteKind::Email => "invite",
            },
            resource_id: id.to_string(),
            log: match &email {
                Some(e) => format!("Invitation of {e} withdrawn"),
                None => "Invite link deleted".to_string(),
            },
            before: Some(serde_json::json!({"email": email})),
            after: None,
        },
    );
    Ok(())
}

/// The invite with this lookup, if any.
pub async fn find(tx: &mut Tx, lookup: &str) -> Result<Option<Found>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        organisation_id: i64,
        kind: String,
        email: Option<String>,
        role: String,
        secret_hash: String,
        expires_at: i64,
    }
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, organisation_id, kind, email, role, secret_hash, expires_at FROM invites \
             WHERE lookup = $1",
        )
        .bind(lookup)
        .fetch_optional(c)
        .await?
    });
    Ok(row.and_then(|r| {
        Some(Found {
            id: r.id,
            organisation_id: r.organisation_id,
            kind: InviteKind::parse(&r.kind)?,
            email: r.email,
            role: flagstone_access::Role::parse(&r.role)?,
            secret_hash: r.secret_hash,
            expires_at: r.expires_at,
        })
    }))
}

/// Accepts an invite (already verified) for a user: the user joins the organisation with the
/// invite's role (a member already keeps the role it has), and its default groups and the
/// invite's groups. An emailed invite is used up: of two simultaneous acceptances, the second
/// is refused. Returns whether the user newly joined.
pub async fn accept(
    ch: &mut Change,
    invite: &Found,
    user_id: i64,
    email: &str,
    now: i64,
) -> Result<bool> {
    let org = invite.organisation_id;
    let mut group_ids = Vec::new();
    if invite.kind == InviteKind::Email {
        group_ids = sql!(ch.tx(), |c| {
            sqlx::query_scalar("SELECT group_id FROM invite_groups WHERE invite_id = $1")
                .bind(invite.id)
                .fetch_all(c)
                .await?
        });
        let used = sql!(ch.tx(), |c| {
            sqlx::query("DELETE FROM invites WHERE id = $1")
                .bind(invite.id)
                .execute(c)
                .await?
                .rows_affected()
        });
        if used == 0 {
            return Err(StoreError::invalid(
                "invite_hash",
                "this invitation has already been used",
            ));
        }
    }
    let joined = members::add(ch, org, user_id, email, invite.role.as_str(), now).await?;
    groups::join_default_groups(ch.tx(), org, user_id).await?;
    groups::join_groups(ch.tx(), org, user_id, &group_ids).await?;
    Ok(joined)
}
