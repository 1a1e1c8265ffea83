//! `/api/v1/auth/`: sign-up, sign-in (an API token, or a browser session with its CSRF token),
//! sign-out, and one's own account. Flagsmith's paths and bodies where it has them; the session
//! endpoints are Flagstone's (see `docs/authentication.md`).

use axum::extract::State;
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use flagstone_access::{password, secrets, Role};
use flagstone_store::accounts::invites;
use flagstone_store::accounts::members::{self, UserOrganisation};
use flagstone_store::accounts::tokens::{self, TokenKind};
use flagstone_store::accounts::users::{self, NewUser, ProfilePatch, User};
use flagstone_store::organisations::{self, NewOrganisation};
use flagstone_store::{Actor, StoreError};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::caller::{self, authenticate, authentication_failed, csrf_ok, ClientAddress};
use crate::auth::credentials::{
    session_clear_cookie, session_cookie, session_set_cookie, Credential, API_TOKEN_PREFIX,
    SESSION_PREFIX,
};
use crate::auth::{Caller, Via};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::AppState;

/// Routes that need no credential.
pub(crate) fn public_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(login))
        .routes(routes!(sign_up))
        .routes(routes!(get_session, create_session, delete_session))
}

/// Routes of an authenticated caller's own account.
pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(set_password))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// An API token: send it as `Authorization: Token <key>`.
#[derive(Serialize, utoipa::ToSchema)]
struct TokenResponse {
    key: String,
}

/// The signed-in user: `GET /auth/users/me/`, and `user` in the session responses.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    #[serde(flatten)]
    user: User,
    /// How the user signs in (Flagsmith's field): `EMAIL`.
    auth_type: &'static str,
    /// The user's organisations and role in each.
    organisations: Vec<UserOrganisation>,
}

/// A browser session: the user, and the token to send as `X-CSRF-Token` with every request
/// that changes something.
#[derive(Serialize, utoipa::ToSchema)]
struct SessionResponse {
    user: Me,
    csrf_token: String,
}

async fn me_body(s: &AppState, user_id: i64) -> ApiResult<Me> {
    let mut tx = s.store.read().await?;
    let user = users::get(&mut tx, user_id).await?;
    let organisations = members::organisations_of(&mut tx, user_id).await?;
    Ok(Me {
        user,
        auth_type: "EMAIL",
        organisations,
    })
}

/// Checks an email and password, applying the sign-in limits; the user on success. Unknown
/// email, wrong password and deactivated account cost the same work and get the same answer.
async fn sign_in(s: &AppState, address: &str, c: &Credentials) -> ApiResult<User> {
    let auth = &s.auth;
    let email = users::email_key(&c.email);
    let now = auth.now_ms();
    if let Some(retry) = auth
        .login_failures_by_email
        .blocked(&email, now)
        .or_else(|| auth.login_failures_by_address.blocked(address, now))
    {
        tracing::info!(client = %address, "sign-in refused: too many failures");
        return Err(ApiError::TooManyRequests(retry));
    }
    let candidate = {
        let mut tx = s.store.read().await?;
        users::login_candidate(&mut tx, &email).await?
    };
    let (user, stored) = match candidate {
        Some(c) => (Some(c.user), c.password_hash),
        None => (None, None),
    };
    let matches = auth
        .passwords
        .verify(c.password.clone(), stored.clone())
        .await;
    let user = match user {
        Some(u) if matches && u.is_active => u,
        _ => {
            let now = auth.now_ms();
            auth.login_failures_by_email.fail(&email, now);
            auth.login_failures_by_address.fail(address, now);
            tracing::info!(client = %address, "sign-in failed");
            return Err(ApiError::InvalidCredentials);
        }
    };
    let mut tx = s.store.write().await?;
    users::record_login(&mut tx, user.id, now).await?;
    tx.commit().await?;
    // A hash made with an older cost is replaced while the password is at hand.
    if stored.is_some_and(|h| password::needs_rehash(&h, auth.passwords.cost())) {
        let hash = auth.passwords.hash(c.password.clone()).await;
        let mut tx = s.store.write().await?;
        users::set_password_hash(&mut tx, user.id, &hash, now).await?;
        tx.commit().await?;
    }
    tracing::info!(user = user.id, client = %address, "signed in");
    Ok(user)
}

/// Issues a token of `kind` for a user; returns the secret (shown once).
async fn issue(s: &AppState, user_id: i64, kind: TokenKind) -> ApiResult<String> {
    let (prefix, ttl) = match kind {
        TokenKind::Api => (API_TOKEN_PREFIX, s.auth.config.token_ttl_ms),
        TokenKind::Session => (SESSION_PREFIX, s.auth.config.session_ttl_ms),
    };
    let secret = secrets::new_secret(prefix);
    let now = s.auth.now_ms();
    let mut tx = s.store.write().await?;
    tokens::insert(
        &mut tx,
        user_id,
        kind,
        &secret.lookup,
        &secret.hash,
        now,
        now + ttl,
    )
    .await?;
    tx.commit().await?;
    Ok(secret.secret)
}

/// Signs in; returns an API token (Flagsmith's `/auth/login/`). Failures are 400 with one body
/// whatever went wrong; too many failures for the email or from the client are 429.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    security(()),
    responses((status = 200, body = TokenResponse),
        (status = 400, description = "Unable to log in with provided credentials"),
        (status = 429, description = "Too many failed attempts; see Retry-After")))]
async fn login(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(c): Json<Credentials>,
) -> ApiResult<Json<TokenResponse>> {
    let user = sign_in(&s, &address, &c).await?;
    let key = issue(&s, user.id, TokenKind::Api).await?;
    Ok(Json(TokenResponse { key }))
}

/// Revokes the token (or browser session) the request was authenticated with.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 403, description = "The caller is an API key")))]
async fn logout(State(s): State<AppState>, parts: Parts, caller: Caller) -> ApiResult<Response> {
    caller.require_user()?;
    let token_id = match caller.via() {
        Via::ApiToken { token_id } | Via::Session { token_id, .. } => *token_id,
        Via::InstallationKey | Via::OrganisationKey { .. } => {
            return Err(ApiError::Unauthenticated)
        }
    };
    let mut tx = s.store.write().await?;
    tokens::revoke(&mut tx, token_id).await?;
    tx.commit().await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if matches!(caller.via(), Via::Session { .. }) {
        resp.headers_mut().insert(
            header::SET_COOKIE,
            session_clear_cookie(&parts, s.auth.config.secure_cookies),
        );
    }
    Ok(resp)
}

/// Starts a browser session: sets the `flagstone_session` cookie (HttpOnly, SameSite=Strict)
/// and returns the user and the CSRF token.
#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", request_body = Credentials,
    security(()),
    responses((status = 200, body = SessionResponse),
        (status = 400, description = "Unable to log in with provided credentials"),
        (status = 429, description = "Too many failed attempts; see Retry-After")))]
async fn create_session(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    parts: Parts,
    Json(c): Json<Credentials>,
) -> ApiResult<Response> {
    let user = sign_in(&s, &address, &c).await?;
    let token = issue(&s, user.id, TokenKind::Session).await?;
    let body = SessionResponse {
        user: me_body(&s, user.id).await?,
        csrf_token: secrets::csrf_token(&token),
    };
    let max_age = s.auth.config.session_ttl_ms / 1000;
    let cookie = session_set_cookie(&parts, &token, max_age, s.auth.config.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// The session of the cookie: the user and the CSRF token (a reloaded page recovers it).
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth", security(("session" = [])),
    responses((status = 200, body = SessionResponse), (status = 401, description = "No valid session")))]
async fn get_session(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    parts: Parts,
) -> ApiResult<Json<SessionResponse>> {
    let Some(token) = session_cookie(&parts.headers) else {
        return Err(ApiError::Unauthenticated);
    };
    let caller = authenticate(&s, &Credential::Session(token.clone())).await?;
    let Some(user_id) = caller.and_then(|c| c.user_id()) else {
        return Err(authentication_failed(&s, &address, "session"));
    };
    Ok(Json(SessionResponse {
        user: me_body(&s, user_id).await?,
        csrf_token: secrets::csrf_token(&token),
    }))
}

/// Ends the session of the cookie (needs `X-CSRF-Token`) and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/auth/session", tag = "auth", security(("session" = [])),
    responses((status = 204), (status = 403, description = "CSRF token missing or wrong")))]
async fn delete_session(State(s): State<AppState>, parts: Parts) -> ApiResult<Response> {
    if let Some(token) = session_cookie(&parts.headers) {
        if let Some(caller) = authenticate(&s, &Credential::Session(token)).await? {
            if !csrf_ok(&parts, &caller) {
                return Err(ApiError::Csrf);
            }
            if let Via::Session { token_id, .. } = caller.via() {
                let mut tx = s.store.write().await?;
                tokens::revoke(&mut tx, *token_id).await?;
                tx.commit().await?;
            }
        }
    }
    let cookie = session_clear_cookie(&parts, s.auth.config.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignUp {
    email: String,
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    /// An invite's hash (from an invite link or an emailed invite).
    #[serde(default)]
    invite_hash: Option<String>,
    /// Bootstrap only: the name of the organisation the installation's first user creates.
    #[serde(default)]
    organisation_name: Option<String>,
    /// Accepted for Flagsmith clients; ignored.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[allow(dead_code)]
    sign_up_type: Option<serde_json::Value>,
    /// Accepted for Flagsmith clients; ignored.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    #[allow(dead_code)]
    marketing_consent_given: Option<serde_json::Value>,
}

/// The new account and its first API token.
#[derive(Serialize, utoipa::ToSchema)]
struct SignedUp {
    #[serde(flatten)]
    user: Me,
    /// An API token (`Authorization: Token <key>`), shown once.
    key: String,
}

/// Signs up. Open sign-up is off unless `--allow-signup`; then it needs a valid `invite_hash`,
/// except for the installation's very first user, who becomes a superuser and the `ADMIN` of
/// a new organisation.
#[utoipa::path(post, path = "/api/v1/auth/users", tag = "auth", request_body = SignUp,
    security(()),
    responses((status = 201, body = SignedUp),
        (status = 400, description = "Invalid email or password (the field is named)"),
        (status = 403, description = "Sign-up is closed and no valid invite was given")))]
async fn sign_up(
    State(s): State<AppState>,
    Json(req): Json<SignUp>,
) -> ApiResult<(StatusCode, Json<SignedUp>)> {
    let email = users::validate_email(&req.email)?;
    password::check_policy(&req.password, &email)
        .map_err(|e| StoreError::invalid("password", e.0))?;
    let closed = || {
        ApiError::SignupClosed(
            "Sign-up is by invitation: ask an organisation admin for an invite link.".into(),
        )
    };
    let invite = match &req.invite_hash {
        Some(h) => Some(super::people::invites::for_sign_up(&s, h, &email).await?),
        None => None,
    };
    if !s.auth.config.allow_signup && invite.is_none() {
        let mut tx = s.store.read().await?;
        if users::count(&mut tx).await? > 0 {
            return Err(closed());
        }
    }
    let hash = s.auth.passwords.hash(req.password.clone()).await;
    let now = s.auth.now_ms();
    let actor = Actor::system(&email);
    let mut ch = s.store.change(&actor).await?;
    let bootstrap = users::claim_bootstrap(ch.tx(), now).await?;
    if !bootstrap && !s.auth.config.allow_signup && invite.is_none() {
        return Err(closed());
    }
    let user = users::create(
        ch.tx(),
        &NewUser {
            email: email.clone(),
            first_name: req.first_name.clone(),
            last_name: req.last_name.clone(),
            password_hash: Some(hash),
            is_superuser: bootstrap,
        },
        now,
    )
    .await?;
    if let Some(invite) = &invite {
        invites::accept(&mut ch, invite, user.id, &email, now).await?;
        tracing::info!(
            user = user.id,
            organisation = invite.organisation_id,
            "signed up with an invitation"
        );
    }
    if bootstrap {
        let name = req
            .organisation_name
            .clone()
            .unwrap_or_else(|| "Default organisation".to_string());
        let org = organisations::create(
            &mut ch,
            &NewOrganisation {
                name,
                stop_serving_flags: false,
                persist_trait_data: true,
                feature_analytics: false,
            },
        )
        .await?;
        members::add(&mut ch, org.id, user.id, &email, Role::Admin.as_str(), now).await?;
        tracing::info!(
            user = user.id,
            organisation = org.id,
            "first user: superuser and organisation admin"
        );
    }
    ch.commit().await?;
    let key = issue(&s, user.id, TokenKind::Api).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignedUp {
            user: me_body(&s, user.id).await?,
            key,
        }),
    ))
}

/// The signed-in user, with organisations and roles.
#[utoipa::path(get, path = "/api/v1/auth/users/me", tag = "auth",
    responses((status = 200, body = Me), (status = 403, description = "The caller is an API key")))]
async fn me(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let id = caller.require_user()?;
    Ok(Json(me_body(&s, id).await?))
}

/// Changes one's own first and last name.
#[utoipa::path(patch, path = "/api/v1/auth/users/me", tag = "auth", request_body = ProfilePatch,
    responses((status = 200, body = Me)))]
async fn update_me(
    State(s): State<AppState>,
    caller: Caller,
    Json(patch): Json<ProfilePatch>,
) -> ApiResult<Json<Me>> {
    let id = caller.require_user()?;
    let mut tx = s.store.write().await?;
    users::update_profile(&mut tx, id, &patch).await?;
    tx.commit().await?;
    Ok(Json(me_body(&s, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    current_password: String,
    new_password: String,
}

/// Changes one's password (djoser's path). Every token and session of the user is revoked,
/// this one included: sign in again. A wrong current password counts as a failed sign-in.
#[utoipa::path(post, path = "/api/v1/auth/users/set_password", tag = "auth",
    request_body = SetPassword,
    responses((status = 204),
        (status = 400, description = "Wrong current password, or the new one breaks the policy"),
        (status = 429, description = "Too many failed attempts; see Retry-After")))]
async fn set_password(
    State(s): State<AppState>,
    ClientAddress(address): ClientAddress,
    caller: Caller,
    Json(req): Json<SetPassword>,
) -> ApiResult<StatusCode> {
    let user = caller::current_user(&s, &caller).await?;
    sign_in(
        &s,
        &address,
        &Credentials {
            email: user.email.clone(),
            password: req.current_password.clone(),
        },
    )
    .await
    .map_err(|e| match e {
        ApiError::InvalidCredentials => {
            StoreError::invalid("current_password", "is not your current password").into()
        }
        other => other,
    })?;
    password::check_policy(&req.new_password, &user.email)
        .map_err(|e| StoreError::invalid("new_password", e.0))?;
    let hash = s.auth.passwords.hash(req.new_password.clone()).await;
    let now = s.auth.now_ms();
    let mut tx = s.store.write().await?;
    users::set_password_hash(&mut tx, user.id, &hash, now).await?;
    let revoked = tokens::revoke_all(&mut tx, user.id).await?;
    tx.commit().await?;
    tracing::info!(
        user = user.id,
        revoked,
        "password changed; tokens and sessions revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
