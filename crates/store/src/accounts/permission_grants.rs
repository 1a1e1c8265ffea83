//! The rows of `permission_grants`: what a user, a group or an organisation API key (the
//! holder) was granted in an organisation, a project or an environment (the scope). One row per
//! holder and scope: `admin`, and a set of permission keys of that scope. Reading them back as
//! a caller's [`flagstone_access::Grants`] is [`super::grants`].

use flagstone_access::{
    EnvironmentPermission, EnvironmentRef, OrganisationPermission, Permission, ProjectPermission,
    ProjectRef, ScopeKind, Set,
};
use serde::Serialize;

use super::groups::GroupSummary;
use super::members::Person;
use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

/// Who holds a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    User(i64),
    Group(i64),
    ApiKey(i64),
}

impl Holder {
    fn column(self) -> &'static str {
        match self {
            Holder::User(_) => "user_id",
            Holder::Group(_) => "group_id",
            Holder::ApiKey(_) => "api_key_id",
        }
    }

    fn id(self) -> i64 {
        match self {
            Holder::User(id) | Holder::Group(id) | Holder::ApiKey(id) => id,
        }
    }

    /// Which kind of holder, for lists and routes.
    pub fn kind(self) -> HolderKind {
        match self {
            Holder::User(_) => HolderKind::User,
            Holder::Group(_) => HolderKind::Group,
            Holder::ApiKey(_) => HolderKind::ApiKey,
        }
    }
}

/// The kind of a holder, without its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolderKind {
    User,
    Group,
    ApiKey,
}

impl HolderKind {
    fn column(self) -> &'static str {
        Holder::from_kind(self, 0).column()
    }

    /// The field naming the holder in request and response bodies (Flagsmith's).
    pub fn field(self) -> &'static str {
        match self {
            HolderKind::User => "user",
            HolderKind::Group => "group",
            HolderKind::ApiKey => "master_api_key",
        }
    }
}

impl Holder {
    pub fn from_kind(kind: HolderKind, id: i64) -> Holder {
        match kind {
            HolderKind::User => Holder::User(id),
            HolderKind::Group => Holder::Group(id),
            HolderKind::ApiKey => Holder::ApiKey(id),
        }
    }
}

/// Where a grant applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Organisation(i64),
    Project(ProjectRef),
    Environment(EnvironmentRef),
}

impl Scope {
    pub fn kind(self) -> ScopeKind {
        match self {
            Scope::Organisation(_) => ScopeKind::Organisation,
            Scope::Project(_) => ScopeKind::Project,
            Scope::Environment(_) => ScopeKind::Environment,
        }
    }

    pub fn organisation(self) -> i64 {
        match self {
            Scope::Organisation(o) => o,
            Scope::Project(p) => p.organisation,
            Scope::Environment(e) => e.organisation,
        }
    }

    fn project(self) -> Option<i64> {
        match self {
            Scope::Organisation(_) => None,
            Scope::Project(p) => Some(p.project),
            Scope::Environment(e) => Some(e.project),
        }
    }

    fn environment(self) -> Option<i64> {
        match self {
            Scope::Environment(e) => Some(e.environment),
            _ => None,
        }
    }

    /// Parses permission keys of this scope; an unknown key is an error naming it.
    pub fn parse_permissions(self, keys: &[String]) -> Result<String> {
        fn parse<P: Permission>(keys: &[String]) -> Result<String> {
            let set: Set<P> = Set::from_keys(keys.iter().map(String::as_str)).map_err(|k| {
                StoreError::invalid(
                    "permissions",
                    format!(
                        "unknown {} permission {k:?}; known: {}",
                        P::SCOPE.as_str(),
                        P::ALL
                            .iter()
                            .map(|p| p.key())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            Ok(set.keys().join(","))
        }
        match self {
            Scope::Organisation(_) => parse::<OrganisationPermission>(keys),
            Scope::Project(_) => parse::<ProjectPermission>(keys),
            Scope::Environment(_) => parse::<EnvironmentPermission>(keys),
        }
    }
}

/// The permission keys stored on a row (comma-separated), as a list.
pub fn split_keys(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// A grant as listed, with its holder.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub id: i64,
    /// The user holding it (user grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Person>,
    /// The group holding it (group grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSummary>,
    /// The organisation API key holding it (key grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_api_key: Option<KeySummary>,
    /// Permission keys of the scope.
    pub permissions: Vec<String>,
    /// Every permission of the scope (and, for a project, of its environments).
    pub admin: bool,
}

/// An organisation API key as grants show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeySummary {
    pub id: i64,
    pub name: String,
    pub prefix: String,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: i64,
    user_id: Option<i64>,
    group_id: Option<i64>,
    api_key_id: Option<i64>,
    admin: bool,
    permissions: String,
}

const SCOPE_WHERE: &str = "scope = $1 AND organisation_id = $2 \
     AND COALESCE(project_id, 0) = $3 AND COALESCE(environment_id, 0) = $4";

/// The grants of one kind of holder in a scope, by id.
pub async fn list(tx: &mut Tx, scope: Scope, kind: HolderKind) -> Result<Vec<GrantView>> {
    let rows: Vec<GrantRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT id, user_id, group_id, api_key_id, admin, permissions FROM permission_grants \
             WHERE {SCOPE_WHERE} AND {} IS NOT NULL ORDER BY id",
            kind.column()
        ))
        .bind(scope.kind().as_str())
        .bind(scope.organisation())
        .bind(scope.project().unwrap_or(0))
        .bind(scope.environment().unwrap_or(0))
        .fetch_all(c)
        .await?
    });
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(view(tx, r).await?);
    }
    Ok(out)
}

async fn view(tx: &mut Tx, r: GrantRow) -> Result<GrantView> {
    let mut v = GrantView {
        id: r.id,
        user: None,
        group: None,
        master_api_key: None,
        permissions: split_keys(&r.permissions),
        admin: r.admin,
    };
    if let Some(u) = r.user_id {
        v.user = sql!(tx, |c| {
            sqlx::query_as(
                "SELECT id, email, first_name, last_name, last_login_at FROM users WHERE id = $1",
            )
            .bind(u)
            .fetch_optional(c)
            .await?
        });
    }
    if let Some(g) = r.group_id {
        v.group = sql!(tx, |c| {
            sqlx::query_as("SELECT id, name FROM user_groups WHERE id = $1")
                .bind(g)
                .fetch_optional(c)
                .await?
        });
    }
    if let Some(k) = r.api_key_id {
        v.master_api_key = sql!(tx, |c| {
            sqlx::query_as("SELECT id, name, prefix FROM api_keys WHERE id = $1")
                .bind(k)
                .fetch_optional(c)
                .await?
        });
    }
    Ok(v)
}

/// One grant of a kind of holder in a scope.
pub async fn get(tx: &mut Tx, scope: Scope, kind: HolderKind, id: i64) -> Result<GrantView> {
    let row: Option<GrantRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT id, user_id, group_id, api_key_id, admin, permissions FROM permission_grants \
             WHERE {SCOPE_WHERE} AND {} IS NOT NULL AND id = $5",
            kind.column()
        ))
        .bind(scope.kind().as_str())
        .bind(scope.organisation())
        .bind(scope.project().unwrap_or(0))
        .bind(scope.environment().unwrap_or(0))
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    view(tx, row.ok_or(StoreError::not_found("permission grant"))?).await
}

/// Checks that the holder belongs to the scope's organisation (a user must be a member).
async fn check_holder(tx: &mut Tx, scope: Scope, holder: Holder) -> Result<()> {
    let org = scope.organisation();
    let field = holder.kind().field();
    let found: Option<i64> = match holder {
        Holder::User(u) => sql!(tx, |c| {
            sqlx::query_scalar(
                "SELECT user_id FROM organisation_members WHERE organisation_id = $1 AND user_id = $2",
            )
            .bind(org)
            .bind(u)
            .fetch_optional(c)
            .await?
        }),
        Holder::Group(g) => sql!(tx, |c| {
            sqlx::query_scalar("SELECT id FROM user_groups WHERE organisation_id = $1 AND id = $2")
                .bind(org)
                .bind(g)
                .fetch_optional(c)
                .await?
        }),
        Holder::ApiKey(k) => sql!(tx, |c| {
            sqlx::query_scalar("SELECT id FROM api_keys WHERE organisation_id = $1 AND id = $2")
                .bind(org)
                .bind(k)
                .fetch_optional(c)
                .await?
        }),
    };
    if found.is_none() {
        let what = match holder {
            Holder::User(u) => format!("user {u} is not a member of this organisation"),
            Holder::Group(g) => format!("group {g} is not a group of this organisation"),
            Holder::ApiKey(k) => format!("API key {k} is not a key of this organisation"),
        };
        return Err(StoreError::invalid(field, what));
    }
    Ok(())
}

fn audit_entry(
    scope: Scope,
    action: &'static str,
    v: &GrantView,
    log: String,
    state: serde_json::Value,
) -> AuditEntry {
    let (before, after) = if action == "deleted" {
        (Some(state), None)
    } else {
        (None, Some(state))
    };
    AuditEntry {
        project_id: scope.project(),
        environment_id: scope.environment(),
        action,
        resource_type: "permission_grant",
        resource_id: v.id.to_string(),
        log,
        before,
        after,
    }
}

fn holder_name(v: &GrantView) -> String {
    if let Some(u) = &v.user {
        format!("user {}", u.email)
    } else if let Some(g) = &v.group {
        format!("group '{}'", g.name)
    } else if let Some(k) = &v.master_api_key {
        format!("API key '{}'", k.name)
    } else {
        "nobody".into()
    }
}

fn scope_name(scope: Scope) -> String {
    match scope {
        Scope::Organisation(o) => format!("organisation {o}"),
        Scope::Project(p) => format!("project {}", p.project),
        Scope::Environment(e) => format!("environment {}", e.environment),
    }
}

fn state(v: &GrantView) -> serde_json::Value {
    serde_json::json!({"permissions": v.permissions, "admin": v.admin})
}

/// Grants `permissions` (keys of the scope) and `admin` to a holder in a scope. A holder has at
/// most one grant per scope: granting again is a conflict (update the grant instead).
pub async fn create(
    ch: &mut Change,
    scope: Scope,
    holder: Holder,
    permissions: &[String],
    admin: bool,
    now: i64,
) -> Result<GrantView> {
    let keys = scope.parse_permissions(permissions)?;
    check_holder(ch.tx(), scope, holder).await?;
    let id: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar(&format!(
            "INSERT INTO permission_grants ({}, scope, organisation_id, project_id, environment_id, \
                 admin, permissions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
            holder.column()
        ))
        .bind(holder.id())
        .bind(scope.kind().as_str())
        .bind(scope.organisation())
        .bind(scope.project())
        .bind(scope.environment())
        .bind(admin)
        .bind(&keys)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(crate::error::unique_as_conflict(
            holder.kind().field(),
            "already has a grant here: change that one (PUT/PATCH) instead",
        ))?
    });
    let v = get(ch.tx(), scope, holder.kind(), id).await?;
    let log = format!(
        "Permissions of {} in {} set to {}",
        holder_name(&v),
        scope_name(scope),
        describe(&v)
    );
    ch.audit_in_organisation(
        scope.organisation(),
        audit_entry(scope, "created", &v, log, state(&v)),
    );
    Ok(v)
}

fn describe(v: &GrantView) -> String {
    if v.admin {
        "admin".into()
    } else if v.permissions.is_empty() {
        "nothing".into()
    } else {
        v.permissions.join(", ")
    }
}

/// Replaces a grant's permissions and admin flag (`None`: keep).
pub async fn update(
    ch: &mut Change,
    scope: Scope,
    kind: HolderKind,
    id: i64,
    permissions: Option<&[String]>,
    admin: Option<bool>,
    now: i64,
) -> Result<GrantView> {
    let before = get(ch.tx(), scope, kind, id).await?;
    let keys = match permissions {
        Some(p) => scope.parse_permissions(p)?,
        None => before.permissions.join(","),
    };
    sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE permission_grants SET admin = $2, permissions = $3, updated_at = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(admin.unwrap_or(before.admin))
        .bind(&keys)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    let after = get(ch.tx(), scope, kind, id).await?;
    let log = format!(
        "Permissions of {} in {} changed from {} to {}",
        holder_name(&after),
        scope_name(scope),
        describe(&before),
        describe(&after)
    );
    let mut entry = audit_entry(scope, "updated", &after, log, state(&after));
    entry.before = Some(state(&before));
    ch.audit_in_organisation(scope.organisation(), entry);
    Ok(after)
}

/// Removes a grant. The holder loses it with its next request.
pub async fn delete(ch: &mut Change, scope: Scope, kind: HolderKind, id: i64) -> Result<()> {
    let before = get(ch.tx(), scope, kind, id).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM permission_grants WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    let log = format!(
        "Permissions of {} in {} removed",
        holder_name(&before),
        scope_name(scope)
    );
    ch.audit_in_organisation(
        scope.organisation(),
        audit_entry(scope, "deleted", &before, log, state(&before)),
    );
    Ok(())
}
