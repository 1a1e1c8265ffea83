//! People and what they may do: the rows behind sign-in and permissions. This module stores
//! and loads; it does not decide. Hashing and the permission rules live in `flagstone-access`
//! (pure), the HTTP side (credentials, cookies, rate limits) in `flagstone-api`.
//!
//! - [`users`]: accounts (email, Argon2id hash, names, superuser flag) and the bootstrap marker.
//! - [`tokens`]: API tokens and browser sessions, stored as lookup + SHA-256.
//! - [`members`]: organisation membership and roles.
//! - [`grants`]: everything a caller holds, loaded in one go for [`flagstone_access::Grants`].

pub mod grants;
pub mod members;
pub mod tokens;
pub mod users;
