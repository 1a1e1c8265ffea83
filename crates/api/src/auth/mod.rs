//! Who is calling: authentication for the admin API. See `docs/authentication.md`.
//!
//! Every admin route sits behind [`caller::require_caller`], which reads the request's
//! credential ([`credentials`]) — `Authorization: Api-Key …` (the installation key, or an
//! organisation API key), `Authorization: Token …` (a user's API token), or the
//! `flagstone_session` cookie of a browser session (plus `X-CSRF-Token` on requests that change
//! something) — verifies it against the store, loads what the caller was granted, and hands
//! handlers a [`Caller`]. Failures are counted per client address ([`throttle`]); past the
//! limit they are answered 429 with `Retry-After`. Passwords are checked in [`passwords`];
//! sign-in, sessions and accounts are in `routes::auth`.

pub mod caller;
pub mod credentials;
pub mod passwords;
pub mod permit;
pub mod throttle;

use std::sync::Arc;

use axum::http::HeaderName;
use flagstone_access::password::Cost;

pub use caller::{Caller, Via};

use crate::clock::Clock;
use passwords::Passwords;
use throttle::Throttle;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// How sign-in and authentication behave (flags of `flagstone serve`).
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Anyone may sign up (`--allow-signup`); otherwise only the installation's first user and
    /// holders of a valid invite.
    pub allow_signup: bool,
    /// Lifetime of an API token from `/auth/login/`.
    pub token_ttl_ms: i64,
    /// Lifetime of a browser session.
    pub session_ttl_ms: i64,
    /// Always mark the session cookie `Secure` (it is anyway on requests that came over HTTPS).
    pub secure_cookies: bool,
    /// Trust this header for the client's address (only behind a proxy that sets it).
    pub client_address_header: Option<HeaderName>,
    /// Argon2id cost of new password hashes.
    pub password_cost: Cost,
    pub limits: AuthLimits,
}

/// Failure limits: at most `max` failures per `window_ms`, then 429 until the window ends.
#[derive(Clone, Copy, Debug)]
pub struct AuthLimits {
    pub login_failures_per_email: u32,
    pub login_failures_per_address: u32,
    pub login_window_ms: i64,
    pub auth_failures_per_address: u32,
    pub auth_window_ms: i64,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            login_failures_per_email: 10,
            login_failures_per_address: 30,
            login_window_ms: 15 * MINUTE_MS,
            auth_failures_per_address: 30,
            auth_window_ms: MINUTE_MS,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_signup: false,
            token_ttl_ms: 30 * 24 * HOUR_MS,
            session_ttl_ms: 7 * 24 * HOUR_MS,
            secure_cookies: false,
            client_address_header: None,
            password_cost: Cost::DEFAULT,
            limits: AuthLimits::default(),
        }
    }
}

/// Authentication's shared state: configuration, clock, password hasher and failure counters.
pub struct Auth {
    pub config: AuthConfig,
    pub clock: Arc<dyn Clock>,
    pub passwords: Passwords,
    /// Failed authentications (any credential) per client address.
    pub failures_by_address: Throttle,
    /// Failed sign-ins per email (known or not, so the limit says nothing about existence).
    pub login_failures_by_email: Throttle,
    /// Failed sign-ins per client address.
    pub login_failures_by_address: Throttle,
}

impl Auth {
    pub fn new(config: AuthConfig, clock: Arc<dyn Clock>) -> Auth {
        let l = config.limits;
        Auth {
            passwords: Passwords::new(config.password_cost),
            failures_by_address: Throttle::new(l.auth_failures_per_address, l.auth_window_ms),
            login_failures_by_email: Throttle::new(l.login_failures_per_email, l.login_window_ms),
            login_failures_by_address: Throttle::new(
                l.login_failures_per_address,
                l.login_window_ms,
            ),
            config,
            clock,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
