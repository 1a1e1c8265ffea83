//! Organisation membership: which users belong to which organisation, as `ADMIN` or `USER`;
//! listing members, changing roles and removing members (never the last admin).

use flagstone_access::Role;
use serde::Serialize;

use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

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

/// A person as lists of members, groups and grants show them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The last successful sign-in (Unix ms).
    pub last_login_at: Option<i64>,
}

/// A member of an organisation (Flagsmith's organisation user list).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub person: Person,
    /// `ADMIN` or `USER`.
    pub role: String,
    /// When the user joined the organisation (Unix ms).
    pub joined_at: i64,
}

const MEMBER_COLUMNS: &str =
    "u.id, u.email, u.first_name, u.last_name, u.last_login_at, m.role, m.joined_at";

/// The members of an organisation, by user id.
pub async fn list(tx: &mut Tx, organisation_id: i64) -> Result<Vec<Member>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM organisation_members m \
             JOIN users u ON u.id = m.user_id WHERE m.organisation_id = $1 ORDER BY u.id"
        ))
        .bind(organisation_id)
        .fetch_all(c)
        .await?
    }))
}

/// One member of an organisation; not found if the user is not a member.
pub async fn get(tx: &mut Tx, organisation_id: i64, user_id: i64) -> Result<Member> {
    let row: Option<Member> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM organisation_members m \
             JOIN users u ON u.id = m.user_id WHERE m.organisation_id = $1 AND m.user_id = $2"
        ))
        .bind(organisation_id)
        .bind(user_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("organisation member"))
}

/// Serialises changes to an organisation's admins: on PostgreSQL two transactions demoting
/// the last two admins at once would each still see the other; locking the organisation's row
/// makes the second wait and then see the first's change. (SQLite writers are serialised.)
async fn lock_organisation(tx: &mut Tx, organisation_id: i64) -> Result<()> {
    if tx.backend() == crate::Backend::Postgres {
        let _: Option<i64> = sql!(tx, |c| {
            sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1 FOR UPDATE")
                .bind(organisation_id)
                .fetch_optional(c)
                .await?
        });
    }
    Ok(())
}

async fn admins(tx: &mut Tx, organisation_id: i64) -> Result<i64> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM organisation_members WHERE organisation_id = $1 AND role = $2",
        )
        .bind(organisation_id)
        .bind(Role::Admin.as_str())
        .fetch_one(c)
        .await?
    }))
}

/// Refuses to leave an organisation without an admin.
async fn keep_an_admin(tx: &mut Tx, organisation_id: i64, leaving: &Member) -> Result<()> {
    if leaving.role == Role::Admin.as_str() && admins(tx, organisation_id).await? <= 1 {
        return Err(StoreError::invalid(
            "role",
            "this is the organisation's last admin: make someone else admin first",
        ));
    }
    Ok(())
}

/// Changes a member's role. The last admin cannot be made a `USER`.
pub async fn set_role(
    ch: &mut Change,
    organisation_id: i64,
    user_id: i64,
    role: Role,
) -> Result<Member> {
    lock_organisation(ch.tx(), organisation_id).await?;
    let before = get(ch.tx(), organisation_id, user_id).await?;
    if before.role == role.as_str() {
        return Ok(before);
    }
    if role != Role::Admin {
        keep_an_admin(ch.tx(), organisation_id, &before).await?;
    }
    sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE organisation_members SET role = $3 WHERE organisation_id = $1 AND user_id = $2",
        )
        .bind(organisation_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(c)
        .await?
        .rows_affected()
    });
    ch.audit_in_organisation(
        organisation_id,
        AuditEntry {
            project_id: None,
            environment_id: None,
            action: "updated",
            resource_type: "organisation_member",
            resource_id: user_id.to_string(),
            log: format!("User {} is now {role}", before.person.email),
            before: Some(serde_json::json!({"user": user_id, "role": before.role})),
            after: Some(serde_json::json!({"user": user_id, "role": role.as_str()})),
        },
    );
    get(ch.tx(), organisation_id, user_id).await
}

/// Removes a member from an organisation, with everything the membership carried there: the
/// user's place in the organisation's groups, the user's own grants in it and the ownership of
/// its features. The last admin
/// cannot be removed. The next request of the user is refused (grants are loaded per request).
pub async fn remove(ch: &mut Change, organisation_id: i64, user_id: i64) -> Result<Member> {
    lock_organisation(ch.tx(), organisation_id).await?;
    let before = get(ch.tx(), organisation_id, user_id).await?;
    keep_an_admin(ch.tx(), organisation_id, &before).await?;
    sql!(ch.tx(), |c| {
        sqlx::query(
            "DELETE FROM user_group_members WHERE user_id = $2 AND group_id IN \
             (SELECT id FROM user_groups WHERE organisation_id = $1)",
        )
        .bind(organisation_id)
        .bind(user_id)
        .execute(c)
        .await?
        .rows_affected()
    });
    // Ownership of the organisation's features goes with the membership.
    sql!(ch.tx(), |c| {
        sqlx::query(
            "DELETE FROM feature_owners WHERE user_id = $2 AND feature_id IN \
             (SELECT f.id FROM features f JOIN projects p ON p.id = f.project_id \
              WHERE p.organisation_id = $1)",
        )
        .bind(organisation_id)
        .bind(user_id)
        .execute(c)
        .await?
        .rows_affected()
    });
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM permission_grants WHERE organisation_id = $1 AND user_id = $2")
            .bind(organisation_id)
            .bind(user_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM organisation_members WHERE organisation_id = $1 AND user_id = $2")
            .bind(organisation_id)
            .bind(user_id)
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
            resource_type: "organisation_member",
            resource_id: user_id.to_string(),
            log: format!("User {} removed from the organisation", before.person.email),
            before: Some(serde_json::json!({"user": user_id, "role": before.role})),
            after: None,
        },
    );
    Ok(before)
}
