//! Who may do what in Flagstone, decided without I/O (see the crate README).
//!
//! - [`permissions`]: the permission names of each scope, with Flagsmith's keys.
//! - [`grants`]: what a caller holds ([`Grants`]) and [`Grants::check`], which turns a [`Need`]
//!   into a [`Decision`]; [`Grants::visible`] for filtering lists.
//! - [`secrets`]: random tokens and keys stored as hashes, compared in constant time; CSRF.
//! - [`password`]: the password policy and Argon2id hashing.

pub mod grants;
pub mod password;
pub mod permissions;
pub mod secrets;

pub use grants::{
    Because, CallerKind, Decision, EnvironmentRef, Grant, Grants, Membership, Need, ProjectRef,
    Reason, Refusal, Role, Visibility, Visible,
};
pub use permissions::{
    EnvironmentPermission, OrganisationPermission, Permission, ProjectPermission, ScopeKind, Set,
};
