//! Reading the audit log. Entries are written only by [`crate::Change::commit`].

use serde::Serialize;

use crate::{sql, Page, PageRequest, Result, Tx};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub id: i64,
    pub created_at: i64,
    pub project_id: Option<i64>,
    pub environment_id: Option<i64>,
    /// Who made the change: `admin-key:<name>` or a system actor. Never a key.
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub log: String,
    /// JSON text of the state before the change, if any.
    pub before_state: Option<String>,
    /// JSON text of the state after the change, if any.
    pub after_state: Option<String>,
}

/// Audit entries, newest first; of one project when `project_id` is given.
pub async fn list(
    tx: &mut Tx,
    project_id: Option<i64>,
    page: PageRequest,
) -> Result<Page<AuditRecord>> {
    let count: i64 = sql!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE ($1 IS NULL OR project_id = $1)")
            .bind(project_id)
            .fetch_one(c)
            .await?
    });
    let results = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, created_at, project_id, environment_id, actor, action, resource_type, \
                 resource_id, log, before_state, after_state \
             FROM audit_log WHERE ($1 IS NULL OR project_id = $1) \
             ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(project_id)
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}
