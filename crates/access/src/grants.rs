//! What a caller holds ([`Grants`]) and the decision whether that is enough for what a request
//! needs ([`Need`] → [`Decision`]). The rules, in one place:
//!
//! - A **superuser** (the installation's key, or a user with `is_superuser`) may do everything.
//! - Nothing in an organisation is granted to a caller that is not a **member** of it (an
//!   organisation key is a member of its own organisation only).
//! - An organisation **`ADMIN`** (and an admin organisation key) holds every permission of the
//!   organisation, of its projects and of their environments.
//! - A **project admin** holds every permission of the project and of its environments.
//! - An **environment admin** holds every permission of that environment.
//! - Otherwise a caller holds what was granted to it directly or to any of its **groups**, in
//!   exactly the scope it was granted in: `UPDATE_FEATURE_STATE` in one environment gives
//!   nothing in another.

use std::collections::BTreeMap;
use std::fmt;

use crate::permissions::{
    EnvironmentPermission, OrganisationPermission, Permission, ProjectPermission, ScopeKind, Set,
};

/// An organisation member's role, as Flagsmith names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::User => "USER",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ADMIN" => Some(Role::Admin),
            "USER" => Some(Role::User),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of credential the caller presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// The installation's key (given or generated at first start).
    InstallationKey,
    /// A person: an API token from `/auth/login/` or a browser session.
    User { user_id: i64 },
    /// An organisation API key (Flagsmith's "master API key").
    OrganisationKey {
        key_id: i64,
        organisation: i64,
        admin: bool,
    },
}

/// A project, with the organisation it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProjectRef {
    pub organisation: i64,
    pub project: i64,
}

/// An environment, with its project and organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnvironmentRef {
    pub organisation: i64,
    pub project: i64,
    pub environment: i64,
}

impl EnvironmentRef {
    pub fn project_ref(&self) -> ProjectRef {
        ProjectRef {
            organisation: self.organisation,
            project: self.project,
        }
    }
}

/// A grant in one scope: `admin`, or a set of permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant<P: Permission> {
    pub admin: bool,
    pub permissions: Set<P>,
}

impl<P: Permission> Default for Grant<P> {
    fn default() -> Self {
        Grant {
            admin: false,
            permissions: Set::empty(),
        }
    }
}

impl<P: Permission> Grant<P> {
    /// Everything: what an admin of this scope or of a scope above holds.
    pub fn everything() -> Self {
        Grant {
            admin: true,
            permissions: Set::all(),
        }
    }

    /// Two grants held at once (directly and through a group) add up.
    pub fn merge(self, other: Self) -> Self {
        Grant {
            admin: self.admin || other.admin,
            permissions: self.permissions.union(other.permissions),
        }
    }

    pub fn has(&self, p: P) -> bool {
        self.admin || self.permissions.contains(p)
    }

    /// The effective permissions: all of them for an admin.
    pub fn effective(&self) -> Set<P> {
        if self.admin {
            Set::all()
        } else {
            self.permissions
        }
    }
}

/// A caller's membership of one organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub role: Role,
    /// Organisation permissions granted to the member or its groups (meaningful for `USER`s).
    pub permissions: Set<OrganisationPermission>,
}

/// Everything one caller holds, loaded once per request.
#[derive(Clone, Debug)]
pub struct Grants {
    pub kind: CallerKind,
    pub superuser: bool,
    pub organisations: BTreeMap<i64, Membership>,
    /// Project grants (direct and through groups, merged), keyed by project id.
    pub projects: BTreeMap<i64, (ProjectRef, Grant<ProjectPermission>)>,
    /// Environment grants (direct and through groups, merged), keyed by environment id.
    pub environments: BTreeMap<i64, (EnvironmentRef, Grant<EnvironmentPermission>)>,
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// An installation-wide operation.
    Superuser,
    /// A person's own account (not a key).
    UserAccount,
    /// Any membership of the organisation.
    Member(i64),
    OrganisationAdmin(i64),
    Organisation(i64, OrganisationPermission),
    ProjectAdmin(ProjectRef),
    Project(ProjectRef, ProjectPermission),
    EnvironmentAdmin(EnvironmentRef),
    Environment(EnvironmentRef, EnvironmentPermission),
}

impl Need {
    /// The name of what is missing when this need is refused: a permission key, or `ADMIN`,
    /// `SUPERUSER`, `USER_ACCOUNT`, `MEMBER`.
    pub fn missing_permission(&self) -> &'static str {
        match self {
            Need::Superuser => "SUPERUSER",
            Need::UserAccount => "USER_ACCOUNT",
            Need::Member(_) => "MEMBER",
            Need::OrganisationAdmin(_) | Need::ProjectAdmin(_) | Need::EnvironmentAdmin(_) => {
                "ADMIN"
            }
            Need::Organisation(_, p) => p.key(),
            Need::Project(_, p) => p.key(),
            Need::Environment(_, p) => p.key(),
        }
    }

    /// The scope the need is about: its kind and id.
    pub fn scope(&self) -> Option<(ScopeKind, i64)> {
        match self {
            Need::Superuser | Need::UserAccount => None,
            Need::Member(o) | Need::OrganisationAdmin(o) | Need::Organisation(o, _) => {
                Some((ScopeKind::Organisation, *o))
            }
            Need::ProjectAdmin(p) | Need::Project(p, _) => Some((ScopeKind::Project, p.project)),
            Need::EnvironmentAdmin(e) | Need::Environment(e, _) => {
                Some((ScopeKind::Environment, e.environment))
            }
        }
    }

    fn organisation(&self) -> Option<i64> {
        match self {
            Need::Superuser | Need::UserAccount => None,
            Need::Member(o) | Need::OrganisationAdmin(o) | Need::Organisation(o, _) => Some(*o),
            Need::ProjectAdmin(p) | Need::Project(p, _) => Some(p.organisation),
            Need::EnvironmentAdmin(e) | Need::Environment(e, _) => Some(e.organisation),
        }
    }
}

/// Why a request was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Because {
    Superuser,
    UserAccount,
    Member,
    OrganisationAdmin,
    ProjectAdmin,
    EnvironmentAdmin,
    /// The permission was granted (directly or through a group).
    Granted,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The caller is not a member of the organisation the resource belongs to.
    NotAMember,
    /// The caller is a member but was not granted what is needed.
    NotGranted,
    /// Only the installation's superusers may do this.
    SuperuserOnly,
    /// Only a person's account may do this (not an API key).
    UsersOnly,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotAMember => "not_a_member",
            Reason::NotGranted => "not_granted",
            Reason::SuperuserOnly => "superuser_only",
            Reason::UsersOnly => "users_only",
        }
    }
}

/// A refused need and why; shown in the 403 body and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub need: Need,
    pub reason: Reason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = self.need.missing_permission();
        let scope = self.need.scope();
        match (self.reason, scope) {
            (Reason::SuperuserOnly, _) => {
                f.write_str("only a superuser of this installation may do this")
            }
            (Reason::UsersOnly, _) => f.write_str("only a user account may do this, not an API key"),
            (Reason::NotAMember, Some((kind, id))) => write!(
                f,
                "you are not a member of the organisation of this {} ({} {id}); {missing} is needed",
                kind.as_str(),
                kind.as_str()
            ),
            (Reason::NotGranted, Some((kind, id))) if missing == "ADMIN" => {
                write!(f, "this needs admin of {} {id}", kind.as_str())
            }
            (Reason::NotGranted, Some((kind, id))) => {
                write!(f, "this needs {missing} in {} {id}", kind.as_str())
            }
            (_, None) => write!(f, "this needs {missing}"),
        }
    }
}

/// The answer to "may this caller do that?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed(Because),
    Refused(Refusal),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }

    pub fn into_result(self) -> Result<Because, Refusal> {
        match self {
            Decision::Allowed(b) => Ok(b),
            Decision::Refused(r) => Err(r),
        }
    }
}

/// Which organisations, projects and environments a caller may see for some permission: an
/// item is visible if `everything`, or its organisation, project or environment is listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visibility {
    pub everything: bool,
    pub organisations: Vec<i64>,
    pub projects: Vec<i64>,
    pub environments: Vec<i64>,
}

impl Visibility {
    pub fn everything() -> Self {
        Visibility {
            everything: true,
            ..Default::default()
        }
    }

    pub fn is_nothing(&self) -> bool {
        !self.everything
            && self.organisations.is_empty()
            && self.projects.is_empty()
            && self.environments.is_empty()
    }
}

/// What a visibility question is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Organisations the caller is a member of.
    Organisations,
    /// Projects with this permission.
    Projects(ProjectPermission),
    /// Environments with this permission.
    Environments(EnvironmentPermission),
}

impl Grants {
    /// A caller that holds nothing (a user of no organisation).
    pub fn nothing(kind: CallerKind) -> Grants {
        Grants {
            kind,
            superuser: false,
            organisations: BTreeMap::new(),
            projects: BTreeMap::new(),
            environments: BTreeMap::new(),
        }
    }

    /// The installation's key: a superuser.
    pub fn installation_key() -> Grants {
        Grants {
            superuser: true,
            ..Grants::nothing(CallerKind::InstallationKey)
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(self.kind, CallerKind::User { .. })
    }

    pub fn role(&self, organisation: i64) -> Option<Role> {
        self.organisations.get(&organisation).map(|m| m.role)
    }

    fn is_org_admin(&self, organisation: i64) -> bool {
        self.role(organisation) == Some(Role::Admin)
    }

    /// What the caller holds in an organisation (everything for an admin), or None if it is
    /// not a member. Superusers hold everything everywhere.
    pub fn organisation_permissions(
        &self,
        organisation: i64,
    ) -> Option<Grant<OrganisationPermission>> {
        if self.superuser {
            return Some(Grant::everything());
        }
        let m = self.organisations.get(&organisation)?;
        Some(match m.role {
            Role::Admin => Grant::everything(),
            Role::User => Grant {
                admin: false,
                permissions: m.permissions,
            },
        })
    }

    /// What the caller holds in a project (admin implies every permission).
    pub fn project_permissions(&self, p: ProjectRef) -> Grant<ProjectPermission> {
        if self.superuser || self.is_org_admin(p.organisation) {
            return Grant::everything();
        }
        if !self.organisations.contains_key(&p.organisation) {
            return Grant::default();
        }
        let g = self
            .projects
            .get(&p.project)
            .map(|(_, g)| *g)
            .unwrap_or_default();
        if g.admin {
            Grant::everything()
        } else {
            g
        }
    }

    /// What the caller holds in an environment (project admin implies environment admin).
    pub fn environment_permissions(&self, e: EnvironmentRef) -> Grant<EnvironmentPermission> {
        if self.project_permissions(e.project_ref()).admin {
            return Grant::everything();
        }
        if !self.organisations.contains_key(&e.organisation) {
            return Grant::default();
        }
        let g = self
            .environments
            .get(&e.environment)
            .map(|(_, g)| *g)
            .unwrap_or_default();
        if g.admin {
            Grant::everything()
        } else {
            g
        }
    }

    /// Decides whether the caller may do what `need` describes.
    pub fn check(&self, need: Need) -> Decision {
        use Decision::{Allowed, Refused};
        let refuse = |reason| Refused(Refusal { need, reason });
        if need == Need::UserAccount {
            return if self.is_user() {
                Allowed(Because::UserAccount)
            } else {
                refuse(Reason::UsersOnly)
            };
        }
        if self.superuser {
            return Allowed(Because::Superuser);
        }
        let Some(org) = need.organisation() else {
            return refuse(Reason::SuperuserOnly);
        };
        if !self.organisations.contains_key(&org) {
            return refuse(Reason::NotAMember);
        }
        if self.is_org_admin(org) {
            return Allowed(Because::OrganisationAdmin);
        }
        let granted = match need {
            Need::Superuser | Need::UserAccount => unreachable!("handled above"),
            Need::Member(_) => return Allowed(Because::Member),
            Need::OrganisationAdmin(_) => false,
            Need::Organisation(o, p) => self.organisation_permissions(o).is_some_and(|g| g.has(p)),
            Need::ProjectAdmin(p) => {
                return self.admin_or(
                    self.project_permissions(p).admin,
                    Because::ProjectAdmin,
                    need,
                )
            }
            Need::Project(p, perm) => {
                let g = self.project_permissions(p);
                if g.admin {
                    return Allowed(Because::ProjectAdmin);
                }
                g.has(perm)
            }
            Need::EnvironmentAdmin(e) => {
                return self.admin_or(
                    self.environment_permissions(e).admin,
                    Because::EnvironmentAdmin,
                    need,
                )
            }
            Need::Environment(e, perm) => {
                let g = self.environment_permissions(e);
                if g.admin {
                    return Allowed(if self.project_permissions(e.project_ref()).admin {
                        Because::ProjectAdmin
                    } else {
                        Because::EnvironmentAdmin
                    });
                }
                g.has(perm)
            }
        };
        if granted {
            Allowed(Because::Granted)
        } else {
            refuse(Reason::NotGranted)
        }
    }

    fn admin_or(&self, admin: bool, because: Because, need: Need) -> Decision {
        if admin {
            Decision::Allowed(because)
        } else {
            Decision::Refused(Refusal {
                need,
                reason: Reason::NotGranted,
            })
        }
    }

    /// Which items of a list the caller may see.
    pub fn visible(&self, what: Visible) -> Visibility {
        if self.superuser {
            return Visibility::everything();
        }
        let member = |org: &i64| self.organisations.contains_key(org);
        let admin_orgs: Vec<i64> = self
            .organisations
            .iter()
            .filter(|(_, m)| m.role == Role::Admin)
            .map(|(id, _)| *id)
            .collect();
        match what {
            Visible::Organisations => Visibility {
                organisations: self.organisations.keys().copied().collect(),
                ..Default::default()
            },
            Visible::Projects(perm) => Visibility {
                projects: self
                    .projects
                    .iter()
                    .filter(|(_, (p, g))| member(&p.organisation) && g.has(perm))
                    .map(|(id, _)| *id)
                    .collect(),
                organisations: admin_orgs,
                ..Default::default()
            },
            Visible::Environments(perm) => Visibility {
                projects: self
                    .projects
                    .iter()
                    .filter(|(_, (p, g))| member(&p.organisation) && g.admin)
                    .map(|(id, _)| *id)
                    .collect(),
                environments: self
                    .environments
                    .iter()
                    .filter(|(_, (e, g))| member(&e.organisation) && g.has(perm))
                    .map(|(id, _)| *id)
                    .collect(),
                organisations: admin_orgs,
                everything: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EnvironmentPermission as E;
    use ProjectPermission as P;

    const P1: ProjectRef = ProjectRef {
        organisation: 1,
        project: 10,
    };
    const E1: EnvironmentRef = EnvironmentRef {
        organisation: 1,
        project: 10,
        environment: 100,
    };
    const E2: EnvironmentRef = EnvironmentRef {
        organisation: 1,
        project: 10,
        environment: 101,
    };
    const OTHER_ORG_ENV: EnvironmentRef = EnvironmentRef {
        organisation: 2,
        project: 20,
        environment: 200,
    };

    fn user(role: Role) -> Grants {
        let mut g = Grants::nothing(CallerKind::User { user_id: 7 });
        g.organisations.insert(
            1,
            Membership {
                role,
                permissions: Set::empty(),
            },
        );
        g
    }

    fn refused(d: Decision) -> Reason {
        match d {
            Decision::Refused(r) => r.reason,
            Decision::Allowed(b) => panic!("allowed because {b:?}"),
        }
    }

    #[test]
    fn environment_permissions_stay_in_their_environment() {
        let mut g = user(Role::User);
        g.environments.insert(
            100,
            (
                E1,
                Grant {
                    admin: false,
                    permissions: [E::UpdateFeatureState].into_iter().collect(),
                },
            ),
        );
        assert_eq!(
            g.check(Need::Environment(E1, E::UpdateFeatureState)),
            Decision::Allowed(Because::Granted)
        );
        assert_eq!(
            refused(g.check(Need::Environment(E2, E::UpdateFeatureState))),
            Reason::NotGranted
        );
        assert_eq!(
            refused(g.check(Need::Environment(E1, E::ManageIdentities))),
            Reason::NotGranted
        );
        assert_eq!(
            refused(g.check(Need::Project(P1, P::ViewProject))),
            Reason::NotGranted
        );
    }

    #[test]
    fn admins_hold_everything_below_them() {
        let g = user(Role::Admin);
        assert_eq!(
            g.check(Need::Environment(E2, E::ApproveChangeRequest)),
            Decision::Allowed(Because::OrganisationAdmin)
        );
        assert_eq!(
            refused(g.check(Need::Environment(OTHER_ORG_ENV, E::ViewEnvironment))),
            Reason::NotAMember
        );

        let mut g = user(Role::User);
        g.projects.insert(
            10,
            (
                P1,
                Grant {
                    admin: true,
                    permissions: Set::empty(),
                },
            ),
        );
        assert_eq!(
            g.check(Need::EnvironmentAdmin(E1)),
            Decision::Allowed(Because::EnvironmentAdmin)
        );
        assert_eq!(
            g.check(Need::Environment(E2, E::UpdateFeatureState)),
            Decision::Allowed(Because::ProjectAdmin)
        );
        assert!(g
            .project_permissions(P1)
            .effective()
            .contains(P::DeleteFeature));
        assert_eq!(
            refused(g.check(Need::OrganisationAdmin(1))),
            Reason::NotGranted
        );
    }

    #[test]
    fn grants_without_membership_give_nothing() {
        let mut g = Grants::nothing(CallerKind::User { user_id: 7 });
        g.environments.insert(
            100,
            (
                E1,
                Grant {
                    admin: true,
                    permissions: Set::empty(),
                },
            ),
        );
        assert_eq!(
            refused(g.check(Need::Environment(E1, E::ViewEnvironment))),
            Reason::NotAMember
        );
        assert!(g
            .visible(Visible::Environments(E::ViewEnvironment))
            .is_nothing());
    }

    #[test]
    fn keys_are_not_user_accounts_and_superusers_pass_everything_else() {
        let key = Grants::installation_key();
        assert_eq!(refused(key.check(Need::UserAccount)), Reason::UsersOnly);
        assert!(key.check(Need::Superuser).is_allowed());
        assert!(key
            .check(Need::Environment(OTHER_ORG_ENV, E::ViewIdentities))
            .is_allowed());
        assert_eq!(
            refused(user(Role::Admin).check(Need::Superuser)),
            Reason::SuperuserOnly
        );
    }

    #[test]
    fn visibility_lists_what_may_be_seen() {
        let mut g = user(Role::User);
        g.projects.insert(
            10,
            (
                P1,
                Grant {
                    admin: false,
                    permissions: [P::ViewProject].into_iter().collect(),
                },
            ),
        );
        g.environments.insert(
            101,
            (
                E2,
                Grant {
                    admin: false,
                    permissions: [E::ViewEnvironment].into_iter().collect(),
                },
            ),
        );
        g.environments.insert(
            100,
            (
                E1,
                Grant {
                    admin: false,
                    permissions: [E::ViewIdentities].into_iter().collect(),
                },
            ),
        );
        assert_eq!(
            g.visible(Visible::Projects(P::ViewProject)),
            Visibility {
                projects: vec![10],
                ..Default::default()
            }
        );
        assert_eq!(
            g.visible(Visible::Environments(E::ViewEnvironment)),
            Visibility {
                environments: vec![101],
                ..Default::default()
            }
        );
        assert!(g.visible(Visible::Projects(P::ViewAuditLog)).is_nothing());
    }

    #[test]
    fn refusals_name_what_is_missing() {
        let g = user(Role::User);
        let Decision::Refused(r) = g.check(Need::Environment(E1, E::UpdateFeatureState)) else {
            panic!()
        };
        assert_eq!(r.need.missing_permission(), "UPDATE_FEATURE_STATE");
        assert_eq!(
            r.to_string(),
            "this needs UPDATE_FEATURE_STATE in environment 100"
        );
    }
}
