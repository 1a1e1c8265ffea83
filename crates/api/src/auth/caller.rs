//! The authenticated caller of an admin request: [`require_caller`] (a middleware on every
//! admin route) verifies the credential and loads the caller's grants once; handlers take the
//! result as the [`Caller`] extractor.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{request::Parts, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flagstone_access::{secrets, Decision, Grants, Need};
use flagstone_store::accounts::tokens::{self, TokenKind};
use flagstone_store::accounts::{api_keys, grants, users};
use flagstone_store::{keys, Actor, Result as StoreResult};

use super::credentials::{
    client_address, Credential, API_TOKEN_PREFIX, CSRF_HEADER, ORG_KEY_PREFIX, SESSION_PREFIX,
};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// How the caller authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// The installation key.
    InstallationKey,
    /// A user's API token (`Authorization: Token …`).
    ApiToken { token_id: i64 },
    /// A browser session; `csrf_token` is what `X-CSRF-Token` must carry.
    Session { token_id: i64, csrf_token: String },
    /// An organisation API key (`Authorization: Api-Key fsk_…`).
    OrganisationKey { key_id: i64 },
}

/// Who is calling and what it may do. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Caller(Arc<CallerInner>);

#[derive(Debug)]
struct CallerInner {
    grants: Grants,
    actor: Actor,
    via: Via,
}

impl Caller {
    pub fn new(grants: Grants, actor: Actor, via: Via) -> Caller {
        Caller(Arc::new(CallerInner { grants, actor, via }))
    }

    pub fn grants(&self) -> &Grants {
        &self.0.grants
    }

    /// Who the audit log records.
    pub fn actor(&self) -> &Actor {
        &self.0.actor
    }

    pub fn via(&self) -> &Via {
        &self.0.via
    }

    /// The user, when the caller is a person.
    pub fn user_id(&self) -> Option<i64> {
        self.0.actor.user_id
    }

    /// Allowed, or the 403 that names what is missing.
    pub fn require(&self, need: Need) -> ApiResult<()> {
        match self.0.grants.check(need) {
            Decision::Allowed(_) => Ok(()),
            Decision::Refused(refusal) => {
                tracing::info!(caller = %self.0.actor.name, ?refusal, "permission refused");
                Err(ApiError::Forbidden(refusal))
            }
        }
    }

    /// The user id of a caller that must be a person (403 for keys).
    pub fn require_user(&self) -> ApiResult<i64> {
        self.require(Need::UserAccount)?;
        self.user_id().ok_or(ApiError::Unauthenticated)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> ApiResult<Caller> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // Only a route mounted outside `require_caller` can get here: a programming error.
            tracing::error!(path = %parts.uri.path(), "Caller extracted on a route without authentication");
            ApiError::Unauthenticated
        })
    }
}

/// The client's address as the rate limits see it (see `credentials::client_address`).
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(
            parts,
            s.auth.config.client_address_header.as_ref(),
        )))
    }
}

/// Verifies a credential: the caller it proves, or None if it proves nothing (unknown,
/// revoked, expired, or a deactivated user).
pub async fn authenticate(s: &AppState, credential: &Credential) -> StoreResult<Option<Caller>> {
    let now = s.auth.now_ms();
    let mut tx = s.store.read().await?;
    match credential {
        Credential::Token(t) if t.starts_with(API_TOKEN_PREFIX) => {
            user_token(&mut tx, TokenKind::Api, API_TOKEN_PREFIX, t, now).await
        }
        Credential::Session(t) => {
            user_token(&mut tx, TokenKind::Session, SESSION_PREFIX, t, now).await
        }
        Credential::ApiKey(k) if k.starts_with(ORG_KEY_PREFIX) => {
            let caller = organisation_key(&mut tx, k, now).await?;
            drop(tx);
            if let Some((c, last_used)) = &caller {
                if api_keys::needs_touch(*last_used, now) {
                    if let Via::OrganisationKey { key_id } = c.via() {
                        let mut w = s.store.write().await?;
                        api_keys::touch(&mut w, *key_id, now).await?;
                        w.commit().await?;
                    }
                }
            }
            Ok(caller.map(|(c, _)| c))
        }
        // Before user accounts existed, the installation key was accepted with either scheme.
        Credential::ApiKey(k) | Credential::Token(k) => {
            Ok(keys::find_admin_key(&mut tx, k).await?.map(|(id, name)| {
                Caller::new(
                    Grants::installation_key(),
                    Actor::installation_key(id, &name),
                    Via::InstallationKey,
                )
            }))
        }
    }
}

/// An organisation API key: the caller, and when the key was last used.
async fn organisation_key(
    tx: &mut flagstone_store::Tx,
    presented: &str,
    now: i64,
) -> StoreResult<Option<(Caller, Option<i64>)>> {
    let Some(lookup) = secrets::lookup_of(presented, ORG_KEY_PREFIX) else {
        return Ok(None);
    };
    let Some(k) = api_keys::find(tx, lookup).await? else {
        return Ok(None);
    };
    if !secrets::verify(presented, &k.secret_hash) || !k.usable(now) {
        return Ok(None);
    }
    let grants = grants::of_key(tx, k.id, k.organisation_id, k.is_admin).await?;
    Ok(Some((
        Caller::new(
            grants,
            Actor::organisation_key(k.id, &k.name),
            Via::OrganisationKey { key_id: k.id },
        ),
        k.last_used_at,
    )))
}

async fn user_token(
    tx: &mut flagstone_store::Tx,
    kind: TokenKind,
    prefix: &str,
    presented: &str,
    now: i64,
) -> StoreResult<Option<Caller>> {
    let Some(lookup) = secrets::lookup_of(presented, prefix) else {
        return Ok(None);
    };
    let Some(t) = tokens::find(tx, kind, lookup).await? else {
        return Ok(None);
    };
    if !secrets::verify(presented, &t.secret_hash) || t.expires_at <= now || !t.is_active {
        return Ok(None);
    }
    let grants = grants::of_user(tx, t.user_id, t.is_superuser).await?;
    let via = match kind {
        TokenKind::Api => Via::ApiToken {
            token_id: t.token_id,
        },
        TokenKind::Session => Via::Session {
            token_id: t.token_id,
            csrf_token: secrets::csrf_token(presented),
        },
    };
    Ok(Some(Caller::new(
        grants,
        Actor::user(t.user_id, &t.email),
        via,
    )))
}

/// Counts a failed authentication from `address`; the error to answer with.
pub fn authentication_failed(s: &AppState, address: &str, what: &'static str) -> ApiError {
    let now = s.auth.now_ms();
    match s.auth.failures_by_address.fail(address, now) {
        Some(retry) => {
            tracing::warn!(client = %address, credential = what, "authentication failures over the limit");
            ApiError::TooManyRequests(retry)
        }
        None => {
            tracing::info!(client = %address, credential = what, "authentication failed");
            ApiError::Unauthenticated
        }
    }
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The admin API's gate: authenticates every request, checks the CSRF token of
/// cookie-authenticated requests that change something, and hands the [`Caller`] (and its
/// [`Actor`]) to the handler. What the caller may do is checked by each handler (see
/// [`super::permit`]).
pub async fn require_caller(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let Some(credential) = Credential::from_headers(&parts.headers) else {
        return ApiError::Unauthenticated.into_response();
    };
    let caller = match authenticate(&s, &credential).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            let address = client_address(&parts, s.auth.config.client_address_header.as_ref());
            let what = match credential {
                Credential::ApiKey(_) => "api_key",
                Credential::Token(_) => "token",
                Credential::Session(_) => "session",
            };
            return authentication_failed(&s, &address, what).into_response();
        }
        Err(e) => return ApiError::Store(e).into_response(),
    };
    if let Via::Session { csrf_token, .. } = caller.via() {
        if changes_something(&parts.method) && !csrf_matches(&parts, csrf_token) {
            return ApiError::Csrf.into_response();
        }
    }
    parts.extensions.insert(caller.actor().clone());
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

fn csrf_matches(parts: &Parts, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
}

/// Whether the request carries the CSRF token of its session (for public routes that check a
/// session themselves).
pub fn csrf_ok(parts: &Parts, caller: &Caller) -> bool {
    match caller.via() {
        Via::Session { csrf_token, .. } => csrf_matches(parts, csrf_token),
        _ => true,
    }
}

/// The user behind a caller, as a fresh row.
pub async fn current_user(s: &AppState, caller: &Caller) -> ApiResult<users::User> {
    let id = caller.require_user()?;
    let mut tx = s.store.read().await?;
    Ok(users::get(&mut tx, id).await?)
}
