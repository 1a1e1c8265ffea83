//! Loads everything a caller holds, for the permission checks of `flagstone-access`: a user's
//! memberships and roles, and the grants made to the user directly or to any of its groups; an
//! organisation API key's organisation and the grants made to it. Two reads per request, no
//! caching, so a removed member, a user taken out of a group, a revoked grant or key takes
//! effect on the next request.

use std::collections::BTreeMap;

use flagstone_access::{
    CallerKind, EnvironmentRef, Grant, Grants, Membership, OrganisationPermission, Permission,
    ProjectRef, Role, Set,
};

use super::permission_grants::split_keys;
use crate::{sql, Result, Tx};

/// The grants of a user.
pub async fn of_user(tx: &mut Tx, user_id: i64, superuser: bool) -> Result<Grants> {
    let rows: Vec<(i64, String)> = sql!(tx, |c| {
        sqlx::query_as("SELECT organisation_id, role FROM organisation_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(c)
            .await?
    });
    let mut organisations = BTreeMap::new();
    for (org, role) in rows {
        // An unknown role (written by a newer version) grants nothing beyond membership.
        let role = Role::parse(&role).unwrap_or(Role::User);
        organisations.insert(
            org,
            Membership {
                role,
                permissions: Set::empty(),
            },
        );
    }
    let grants: Vec<GrantRow> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT g.scope, g.organisation_id, g.project_id, g.environment_id, g.admin, \
                 g.permissions FROM permission_grants g \
             WHERE g.user_id = $1 OR g.group_id IN \
                 (SELECT group_id FROM user_group_members WHERE user_id = $1)",
        )
        .bind(user_id)
        .fetch_all(c)
        .await?
    });
    let mut g = Grants {
        superuser,
        organisations,
        ..Grants::nothing(CallerKind::User { user_id })
    };
    add_rows(&mut g, grants);
    Ok(g)
}

/// The grants of an organisation API key: a member of its own organisation only, as `ADMIN`
/// if it is an admin key, otherwise holding what was granted to it.
pub async fn of_key(tx: &mut Tx, key_id: i64, organisation: i64, admin: bool) -> Result<Grants> {
    let mut g = Grants::nothing(CallerKind::OrganisationKey {
        key_id,
        organisation,
        admin,
    });
    g.organisations.insert(
        organisation,
        Membership {
            role: if admin { Role::Admin } else { Role::User },
            permissions: Set::empty(),
        },
    );
    if !admin {
        let grants: Vec<GrantRow> = sql!(tx, |c| {
            sqlx::query_as(
                "SELECT scope, organisation_id, project_id, environment_id, admin, permissions \
                 FROM permission_grants WHERE api_key_id = $1 AND organisation_id = $2",
            )
            .bind(key_id)
            .bind(organisation)
            .fetch_all(c)
            .await?
        });
        add_rows(&mut g, grants);
    }
    Ok(g)
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    scope: String,
    organisation_id: i64,
    project_id: Option<i64>,
    environment_id: Option<i64>,
    admin: bool,
    permissions: String,
}

/// Keys stored by an older or newer version that this one does not know grant nothing.
fn set_of<P: Permission>(stored: &str) -> Set<P> {
    split_keys(stored)
        .iter()
        .filter_map(|k| P::from_key(k))
        .collect()
}

/// Merges grant rows into `g`: a holder's own grants and its groups' add up.
fn add_rows(g: &mut Grants, rows: Vec<GrantRow>) {
    for r in rows {
        match (r.scope.as_str(), r.project_id, r.environment_id) {
            ("organisation", _, _) => {
                if let Some(m) = g.organisations.get_mut(&r.organisation_id) {
                    let granted: Set<OrganisationPermission> = if r.admin {
                        Set::all()
                    } else {
                        set_of(&r.permissions)
                    };
                    m.permissions = m.permissions.union(granted);
                }
            }
            ("project", Some(project), _) => {
                let p = ProjectRef {
                    organisation: r.organisation_id,
                    project,
                };
                let grant = Grant {
                    admin: r.admin,
                    permissions: set_of(&r.permissions),
                };
                let e = g.projects.entry(project).or_insert((p, Grant::default()));
                e.1 = e.1.merge(grant);
            }
            ("environment", Some(project), Some(environment)) => {
                let er = EnvironmentRef {
                    organisation: r.organisation_id,
                    project,
                    environment,
                };
                let grant = Grant {
                    admin: r.admin,
                    permissions: set_of(&r.permissions),
                };
                let e = g
                    .environments
                    .entry(environment)
                    .or_insert((er, Grant::default()));
                e.1 = e.1.merge(grant);
            }
            // A scope written by a newer version grants nothing here.
            _ => {}
        }
    }
}
