//! Reading the audit log. Entries are written only by [`crate::Change::commit`].

use flagstone_access::Visibility;
use serde::Serialize;

use crate::scopes::{visible_sql, Placed};
use crate::{sql, Page, PageRequest, Result, Tx};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub id: i64,
    #[serde(
        rename = "created_date",
        serialize_with = "crate::clock::iso::serialize"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    pub project_id: Option<i64>,
    pub environment_id: Option<i64>,
    /// The organisation the entry belongs to (its project's, or the organisation itself).
    pub organisation_id: Option<i64>,
    /// Who made the change: a user's email, `api-key:<name>`, `admin-key:<name>` or a system
    /// actor. Never a key.
    pub actor: String,
    /// The user who made the change, if a person did.
    pub user_id: Option<i64>,
    /// The organisation API key that made the change, if one did.
    pub api_key_id: Option<i64>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub log: String,
    /// JSON text of the state before the change, if any.
    pub before_state: Option<String>,
    /// JSON text of the state after the change, if any.
    pub after_state: Option<String>,
}

/// Which audit entries to read; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub project: Option<i64>,
    pub environment: Option<i64>,
    /// The actor exactly as recorded (`ada@example.com`, `api-key:ci`, `admin-key:configured`, …).
    pub actor: Option<String>,
    /// Entries at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Entries before this time (ms since the epoch).
    pub until: Option<i64>,
    /// Only entries of these organisations and projects (what a caller may see); `None`: all
    /// (for internal callers).
    pub visible: Option<Visibility>,
}

/// Where audit entries are placed, for [`visible_sql`].
const PLACED: Placed<'static> = Placed {
    organisation: Some("organisation_id"),
    project: Some("project_id"),
    environment: None,
};

fn visible(v: Option<&Visibility>) -> String {
    v.map_or_else(|| "1 = 1".to_string(), |v| visible_sql(v, PLACED))
}

/// Audit entries, newest first; of one project when `project_id` is given.
pub async fn list(
    tx: &mut Tx,
    project_id: Option<i64>,
    page: PageRequest,
) -> Result<Page<AuditRecord>> {
    let filter = AuditFilter {
        project: project_id,
        ..AuditFilter::default()
    };
    search(tx, &filter, page).await
}

/// Audit entries matching `filter`, newest first.
pub async fn search(tx: &mut Tx, f: &AuditFilter, page: PageRequest) -> Result<Page<AuditRecord>> {
    let mut filter = crate::filter::Where::new()
        .bound_if(f.project.is_some(), "project_id = ?")
        .bound_if(f.environment.is_some(), "environment_id = ?")
        .bound_if(f.actor.is_some(), "actor = ?")
        .bound_if(f.since.is_some(), "created_at >= ?")
        .bound_if(f.until.is_some(), "created_at < ?")
        .fixed(visible(f.visible.as_ref()));
    let (limit, offset) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_log WHERE {filter}")),
            f.project,
            f.environment,
            f.actor.as_ref(),
            f.since,
            f.until
        )
        .fetch_one(c)
        .await?
    });
    let results = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT id, created_at, project_id, environment_id, organisation_id, actor, \
                     user_id, api_key_id, action, resource_type, resource_id, log, \
                     before_state, after_state \
                 FROM audit_log WHERE {filter} ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
            )),
            f.project,
            f.environment,
            f.actor.as_ref(),
            f.since,
            f.until
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}

/// The distinct actors of a project's audit entries (or of all entries), for author filters.
pub async fn actors(tx: &mut Tx, project_id: Option<i64>) -> Result<Vec<String>> {
    actors_visible(tx, project_id, None).await
}

/// [`actors`] of the entries `visible` lets a caller see (`None`: all).
pub async fn actors_visible(
    tx: &mut Tx,
    project_id: Option<i64>,
    visible: Option<&Visibility>,
) -> Result<Vec<String>> {
    let filter = crate::filter::Where::new()
        .bound_if(project_id.is_some(), "project_id = ?")
        .fixed(self::visible(visible))
        .sql();
    Ok(sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT DISTINCT actor FROM audit_log WHERE {filter} ORDER BY actor LIMIT 1000"
            )),
            project_id
        )
        .fetch_all(c)
        .await?
    }))
}
