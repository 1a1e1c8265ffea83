//! The permission names, as Flagsmith spells them, at each of the three scopes (organisation,
//! project, environment), and [`Set`], a compact set of them. `admin` is not a permission of
//! these lists: it is a flag on a grant that implies every permission of its scope (and, for a
//! project, every permission of the project's environments).

use std::fmt;
use std::marker::PhantomData;

/// A permission of one scope: a small enum with a stable key.
pub trait Permission: Copy + Eq + fmt::Debug + 'static {
    /// Every permission of this scope, in the order Flagsmith lists them.
    const ALL: &'static [Self];
    /// Which scope these permissions apply to.
    const SCOPE: ScopeKind;
    /// Flagsmith's key, e.g. `UPDATE_FEATURE_STATE`.
    fn key(self) -> &'static str;
    /// One sentence for people (the dashboard, `GET …/permissions/`).
    fn description(self) -> &'static str;
    fn index(self) -> u32;
    fn from_key(key: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.key() == key)
    }
}

/// The three levels at which permissions are granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Organisation,
    Project,
    Environment,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Organisation => "organisation",
            ScopeKind::Project => "project",
            ScopeKind::Environment => "environment",
        }
    }
}

macro_rules! permissions {
    ($(#[$m:meta])* $name:ident, $scope:expr, { $($variant:ident = $key:literal, $desc:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl Permission for $name {
            const ALL: &'static [Self] = &[$($name::$variant),*];
            const SCOPE: ScopeKind = $scope;
            fn key(self) -> &'static str {
                match self { $($name::$variant => $key),* }
            }
            fn description(self) -> &'static str {
                match self { $($name::$variant => $desc),* }
            }
            fn index(self) -> u32 {
                self as u32
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.key())
            }
        }
    };
}

permissions!(
    /// Granted on an organisation (to users and groups); organisation `ADMIN`s hold them all.
    OrganisationPermission, ScopeKind::Organisation, {
        CreateProject = "CREATE_PROJECT", "Allows the user to create projects in this organisation.";
        ManageUserGroups = "MANAGE_USER_GROUPS", "Allows the user to manage the groups in the organisation and their members.";
    }
);

permissions!(
    /// Granted on a project; project admins hold them all.
    ProjectPermission, ScopeKind::Project, {
        ViewProject = "VIEW_PROJECT", "View project.";
        CreateEnvironment = "CREATE_ENVIRONMENT", "Ability to create an environment in this project.";
        DeleteFeature = "DELETE_FEATURE", "Ability to delete features in this project.";
        CreateFeature = "CREATE_FEATURE", "Ability to create and edit features in this project.";
        ManageSegments = "MANAGE_SEGMENTS", "Ability to manage segments in the given project.";
        ViewAuditLog = "VIEW_AUDIT_LOG", "Allows the user to view the audit logs for this project.";
        ManageTags = "MANAGE_TAGS", "Allows the user to manage tags in the given project.";
    }
);

permissions!(
    /// Granted on an environment; environment admins (and admins of its project) hold them all.
    EnvironmentPermission, ScopeKind::Environment, {
        ViewEnvironment = "VIEW_ENVIRONMENT", "View permission for the given environment.";
        UpdateFeatureState = "UPDATE_FEATURE_STATE", "Update the state or value for a given feature state.";
        ManageIdentities = "MANAGE_IDENTITIES", "Manage identities in the given environment.";
        ViewIdentities = "VIEW_IDENTITIES", "View identities in the given environment.";
        ManageSegmentOverrides = "MANAGE_SEGMENT_OVERRIDES", "Permission to manage segment overrides in the given environment.";
        CreateChangeRequest = "CREATE_CHANGE_REQUEST", "Permission to create change requests in the given environment.";
        ApproveChangeRequest = "APPROVE_CHANGE_REQUEST", "Permission to approve change requests in the given environment.";
    }
);

/// A set of permissions of one scope (a bit per permission).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Set<P: Permission> {
    bits: u32,
    _p: PhantomData<P>,
}

impl<P: Permission> Default for Set<P> {
    fn default() -> Self {
        Set::empty()
    }
}

impl<P: Permission> Set<P> {
    pub const fn empty() -> Self {
        Set {
            bits: 0,
            _p: PhantomData,
        }
    }

    pub fn all() -> Self {
        P::ALL.iter().copied().collect()
    }

    pub fn contains(&self, p: P) -> bool {
        self.bits & (1 << p.index()) != 0
    }

    pub fn insert(&mut self, p: P) {
        self.bits |= 1 << p.index();
    }

    pub fn union(self, other: Self) -> Self {
        Set {
            bits: self.bits | other.bits,
            _p: PhantomData,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The permissions held, in Flagsmith's order.
    pub fn iter(&self) -> impl Iterator<Item = P> + '_ {
        P::ALL.iter().copied().filter(|p| self.contains(*p))
    }

    /// The keys held, in Flagsmith's order.
    pub fn keys(&self) -> Vec<&'static str> {
        self.iter().map(P::key).collect()
    }

    /// Parses keys; the first unknown key is returned as the error.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = Set::empty();
        for k in keys {
            set.insert(P::from_key(k).ok_or_else(|| k.to_string())?);
        }
        Ok(set)
    }
}

impl<P: Permission> FromIterator<P> for Set<P> {
    fn from_iter<I: IntoIterator<Item = P>>(iter: I) -> Self {
        let mut s = Set::empty();
        for p in iter {
            s.insert(p);
        }
        s
    }
}

impl<P: Permission> fmt::Debug for Set<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(P::key)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sets_hold_what_was_inserted() {
        for p in ProjectPermission::ALL {
            assert_eq!(ProjectPermission::from_key(p.key()), Some(*p));
        }
        let s: Set<EnvironmentPermission> =
            Set::from_keys(["VIEW_ENVIRONMENT", "MANAGE_IDENTITIES"]).unwrap();
        assert!(s.contains(EnvironmentPermission::ViewEnvironment));
        assert!(!s.contains(EnvironmentPermission::UpdateFeatureState));
        assert_eq!(s.keys(), ["VIEW_ENVIRONMENT", "MANAGE_IDENTITIES"]);
        assert_eq!(
            Set::<EnvironmentPermission>::from_keys(["VIEW_PROJECT"]).unwrap_err(),
            "VIEW_PROJECT"
        );
        assert_eq!(Set::<OrganisationPermission>::all().keys().len(), 2);
    }
}
