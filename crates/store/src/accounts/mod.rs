//! People and what they may do: the rows behind sign-in and permissions. This module stores
//! and loads; it does not decide. Hashing and the permission rules live in `flagstone-access`
//! (pure), the HTTP side (credentials, cookies, rate limits) in `flagstone-api`.
//!
//! - [`users`]: accounts (email, Argon2id hash, names, superuser flag) and the bootstrap marker.
//! - [`tokens`]: API tokens and browser sessions, stored as lookup + SHA-256.
//! - [`members`]: organisation membership and roles.
//! - [`groups`]: groups of members, which grants can be made to.
//! - [`api_keys`]: organisation API keys (Flagsmith's "master API keys").
//! - [`invites`]: invite links and emailed invites.
//! - [`permission_grants`]: the grants (to users, groups, keys) as rows to manage.
//! - [`grants`]: everything a caller holds, loaded in one go for [`flagstone_access::Grants`].

pub mod api_keys;
pub mod grants;
pub mod groups;
pub mod invites;
pub mod members;
pub mod permission_grants;
pub mod tokens;
pub mod users;
