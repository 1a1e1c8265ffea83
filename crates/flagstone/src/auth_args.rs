//! The sign-in and authentication options of every process that serves the admin API.

use std::sync::Arc;

use flagstone_api::auth::{AuthConfig, AuthLimits};
use flagstone_api::clock::SystemClock;
use flagstone_api::AppState;
use flagstone_store::Store;

#[derive(clap::Args, Clone, Debug)]
pub struct AuthArgs {
    /// Let anyone sign up (`POST /api/v1/auth/users/`). Off by default: then only the
    /// installation's first user and people with an invite can.
    #[arg(long, env = "FLAGSTONE_ALLOW_SIGNUP")]
    pub allow_signup: bool,
    /// How long an API token from `/auth/login/` is valid, in hours.
    #[arg(long, env = "FLAGSTONE_TOKEN_TTL_HOURS", default_value_t = 720)]
    pub token_ttl_hours: u64,
    /// How long a browser session is valid, in hours.
    #[arg(long, env = "FLAGSTONE_SESSION_TTL_HOURS", default_value_t = 168)]
    pub session_ttl_hours: u64,
    /// Always mark the session cookie `Secure` (it is anyway when a request arrives over HTTPS
    /// or with `X-Forwarded-Proto: https`).
    #[arg(long, env = "FLAGSTONE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Take the client's address (for rate limits) from this header, e.g. `X-Forwarded-For`.
    /// Only behind a proxy you trust that sets it; by default the socket peer is used.
    #[arg(long, env = "FLAGSTONE_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<axum::http::HeaderName>,
    /// Failed sign-ins allowed per email within the window before 429.
    #[arg(
        long,
        env = "FLAGSTONE_LOGIN_MAX_FAILURES_PER_EMAIL",
        default_value_t = 10
    )]
    pub login_max_failures_per_email: u32,
    /// Failed sign-ins allowed per client address within the window before 429.
    #[arg(
        long,
        env = "FLAGSTONE_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 30
    )]
    pub login_max_failures_per_address: u32,
    /// The sign-in failure window, in seconds.
    #[arg(
        long,
        env = "FLAGSTONE_LOGIN_FAILURE_WINDOW_SECS",
        default_value_t = 900
    )]
    pub login_failure_window_secs: u64,
    /// Failed authentications (bad key, token or session) allowed per client address within
    /// the window before 429.
    #[arg(
        long,
        env = "FLAGSTONE_AUTH_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 30
    )]
    pub auth_max_failures_per_address: u32,
    /// The authentication failure window, in seconds.
    #[arg(long, env = "FLAGSTONE_AUTH_FAILURE_WINDOW_SECS", default_value_t = 60)]
    pub auth_failure_window_secs: u64,
}

impl AuthArgs {
    pub fn config(&self) -> AuthConfig {
        const H: i64 = 3_600_000;
        AuthConfig {
            allow_signup: self.allow_signup,
            token_ttl_ms: (self.token_ttl_hours as i64).max(1) * H,
            session_ttl_ms: (self.session_ttl_hours as i64).max(1) * H,
            secure_cookies: self.secure_cookies,
            client_address_header: self.client_address_header.clone(),
            limits: AuthLimits {
                login_failures_per_email: self.login_max_failures_per_email,
                login_failures_per_address: self.login_max_failures_per_address,
                login_window_ms: self.login_failure_window_secs as i64 * 1000,
                auth_failures_per_address: self.auth_max_failures_per_address,
                auth_window_ms: self.auth_failure_window_secs as i64 * 1000,
            },
            ..AuthConfig::default()
        }
    }

    /// The admin API's state for `store` with these options.
    pub fn app_state(&self, store: Store) -> AppState {
        AppState::with_auth(store, self.config(), Arc::new(SystemClock))
    }
}
