//! Assigned approvers: the author of a change request may name the users who should approve
//! it (Flagsmith's `approvals: [{user}]` at create). As in Flagsmith, an assignment is an
//! approval row that is not approved yet (`approved_at` null, `required` true); the assignee's
//! approval fills it in. Only approved rows count towards the environment's minimum.

use serde::{Deserialize, Serialize};

use crate::environments::Environment;
use crate::{sql, Actor, Result, StoreError, Tx};

/// The most users one request may be assigned to.
pub const MAX_ASSIGNEES: usize = 50;

/// One assigned approver, as Flagsmith's clients send it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// The user's id: a member of the environment's organisation, not the author.
    pub user: i64,
    /// Flagsmith's flag; an assignment is always shown as required.
    #[serde(default)]
    pub required: Option<bool>,
}

/// One approval, or one assignment not approved yet (`approved_at` null).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    pub id: i64,
    /// The approving (or assigned) user's id (null for a key).
    #[sqlx(rename = "user_id")]
    pub user: Option<i64>,
    /// Who approved (or is assigned), as the audit log names them.
    pub approver: String,
    /// Assigned by the author.
    pub required: bool,
    /// Null while an assignee has not approved.
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub approved_at: Option<i64>,
}

/// Checks `assignments` for a request `author` opens in `env`: each user a member of the
/// environment's organisation, listed once, not the author. Their e-mail addresses, in order.
pub(super) async fn validate(
    tx: &mut Tx,
    env: &Environment,
    author: &Actor,
    assignments: &[Assignment],
) -> Result<Vec<String>> {
    if assignments.len() > MAX_ASSIGNEES {
        return Err(StoreError::invalid(
            "approvals",
            format!("at most {MAX_ASSIGNEES} assigned approvers"),
        ));
    }
    let mut emails = Vec::with_capacity(assignments.len());
    for (i, a) in assignments.iter().enumerate() {
        let field = format!("approvals[{i}].user");
        if assignments[..i].iter().any(|o| o.user == a.user) {
            return Err(StoreError::invalid(
                field,
                format!("user {} is listed twice", a.user),
            ));
        }
        if author.user_id == Some(a.user) {
            return Err(StoreError::invalid(
                field,
                "the author of a change request cannot approve it: assign someone else",
            ));
        }
        let email: Option<String> = sql!(tx, |c| {
            sqlx::query_scalar(
                "SELECT u.email FROM users u \
                 JOIN organisation_members m ON m.user_id = u.id \
                 JOIN projects p ON p.organisation_id = m.organisation_id \
                 WHERE u.id = $1 AND p.id = $2",
            )
            .bind(a.user)
            .bind(env.project)
            .fetch_optional(c)
            .await?
        });
        let email = email.ok_or_else(|| {
            StoreError::invalid(
                field,
                format!("user {} is not a member of this organisation", a.user),
            )
        })?;
        emails.push(email);
    }
    Ok(emails)
}

/// Records the assignments of request `id` (checked by [`validate`]).
pub(super) async fn insert(
    tx: &mut Tx,
    id: i64,
    assignments: &[Assignment],
    emails: &[String],
) -> Result<()> {
    for (a, email) in assignments.iter().zip(emails) {
        sql!(tx, |c| {
            sqlx::query(
                "INSERT INTO change_request_approvals \
                     (change_request_id, approver, approver_key, user_id, approved_at, required) \
                 VALUES ($1, $2, $3, $4, NULL, TRUE)",
            )
            .bind(id)
            .bind(email)
            .bind(format!("user:{}", a.user))
            .bind(a.user)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(())
}

/// How many of `approvals` are approvals (assignments not approved yet are not).
pub fn approved(approvals: &[Approval]) -> i64 {
    approvals.iter().filter(|a| a.approved_at.is_some()).count() as i64
}
