//! Organisation membership: which users belong to which organisation, as `ADMIN` or `USER`.

use serde::Serialize;

use crate::{sql, AuditEntry, Change, Result, Tx};

/// One of a user's organisations, with the user's role in it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserOrganisation {
    /// The organisation's id.
    pub id: i64,
    pub name: String,
    /// `ADMIN` or `USER`.
    pub role: String,
}

/// Adds `user_id` to an organisation with `role` (`ADMIN` or `USER`); if already a member,
/// the role is left as it is. Audited in the organisation.
pub async fn add(
    ch: &mut Change,
    organisation_id: i64,
    user_id: i64,
    email: &str,
    role: &str,
    now: i64,
) -> Result<bool> {
    let n = sql!(ch.tx(), |c| {
        sqlx::query(
            "INSERT INTO organisation_members (organisation_id, user_id, role, joined_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (organisation_id, user_id) DO NOTHING",
        )
        .bind(organisation_id)
        .bind(user_id)
        .bind(role)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    if n > 0 {
        ch.audit_in_organisation(
            organisation_id,
            AuditEntry {
                project_id: None,
                environment_id: None,
                action: "created",
                resource_type: "organisation_member",
                resource_id: user_id.to_string(),
                log: format!("User {email} joined the organisation as {role}"),
                before: None,
                after: Some(serde_json::json!({"user": user_id, "role": role})),
            },
        );
    }
    Ok(n > 0)
}

/// The organisations a user belongs to, by id.
pub async fn organisations_of(tx: &mut Tx, user_id: i64) -> Result<Vec<UserOrganisation>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT o.id, o.name, m.role FROM organisation_members m \
             JOIN organisations o ON o.id = m.organisation_id \
             WHERE m.user_id = $1 ORDER BY o.id",
        )
        .bind(user_id)
        .fetch_all(c)
        .await?
    }))
}
