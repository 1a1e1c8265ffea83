//! `/api/v1/organisations/{id}/master-api-keys/`: organisation API keys (Flagsmith's "master
//! API keys"). Made by organisation `ADMIN`s; the key is in the creating response only, then
//! stored as its SHA-256. Sent as `Authorization: Api-Key <key>`; an admin key acts as an
//! organisation `ADMIN`, any other holds only what is granted to it.

use axum::extract::State;
use axum::http::StatusCode;
use flagstone_access::secrets;
use flagstone_store::accounts::api_keys::{self, ApiKey, NewApiKey};
use flagstone_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::require_org_admin;
use crate::auth::credentials::ORG_KEY_PREFIX;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// Acts as an organisation `ADMIN` (Flagsmith's default: true). Otherwise the key holds
    /// only what is granted to it in projects and environments.
    #[serde(default = "yes")]
    is_admin: bool,
    /// When the key stops working: Unix ms, or an ISO-8601 date-time as Flagsmith's clients send
    /// it; absent or null: never. `expiry_date` (Flagsmith's name) is accepted for it.
    #[serde(default, alias = "expiry_date", deserialize_with = "ms_or_iso8601")]
    #[schema(value_type = Option<String>)]
    expires_at: Option<i64>,
}

/// Unix milliseconds or an RFC 3339 date-time (`2026-12-31T00:00:00Z`), as milliseconds.
pub(super) fn ms_or_iso8601<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum When {
        Ms(i64),
        Text(String),
    }
    match Option::<When>::deserialize(d)? {
        None => Ok(None),
        Some(When::Ms(ms)) => Ok(Some(ms)),
        Some(When::Text(text)) => {
            use time::format_description::well_known::Rfc3339;
            match time::OffsetDateTime::parse(&text, &Rfc3339) {
                Ok(t) => Ok(Some((t.unix_timestamp_nanos() / 1_000_000) as i64)),
                Err(_) => Err(D::Error::custom(format!(
                    "expires_at: {text:?} is not Unix ms or an ISO-8601 date-time"
                ))),
            }
        }
    }
}

/// A new key: the row, and the key itself, shown only this once.
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedKey {
    #[serde(flatten)]
    row: ApiKey,
    /// The key: send it as `Authorization: Api-Key <key>`. Never shown again.
    key: String,
}

/// The organisation's API keys, revoked ones included (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/master-api-keys", tag = "people",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ApiKey>),
        (status = 403, description = "Not an admin of the organisation")))]
async fn list_keys(
    State(s): State<AppState>,
    caller: Caller,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(api_keys::list(&mut tx, org, s.auth.now_ms()).await?))
}

/// Creates a key and returns it once, in `key`.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/master-api-keys", tag = "people",
    params(("id" = i64, Path)), request_body = NewKey,
    responses((status = 201, body = CreatedKey),
        (status = 400, description = "Blank or too long name, expiry in the past"),
        (status = 403, description = "Not an admin of the organisation")))]
async fn create_key(
    State(s): State<AppState>,
    caller: Caller,
    Path(org): Path<i64>,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    require_org_admin(&s, &caller, org).await?;
    let secret = secrets::new_secret(ORG_KEY_PREFIX);
    let now = s.auth.now_ms();
    let mut ch = s.store.change(caller.actor()).await?;
    let row = api_keys::create(
        &mut ch,
        org,
        &NewApiKey {
            name: &req.name,
            is_admin: req.is_admin,
            expires_at: req.expires_at,
            created_by: caller.user_id(),
            prefix: &secret.lookup,
            secret_hash: &secret.hash,
        },
        now,
    )
    .await?;
    ch.commit().await?;
    tracing::info!(organisation = org, key = row.id, prefix = %row.prefix, "organisation API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            row,
            key: secret.secret,
        }),
    ))
}

/// One key, by its prefix.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/master-api-keys/{prefix}", tag = "people",
    params(("id" = i64, Path), ("prefix" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, description = "No such key")))]
async fn get_key(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, prefix)): Path<(i64, String)>,
) -> ApiResult<Json<ApiKey>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(
        api_keys::get(&mut tx, org, &prefix, s.auth.now_ms()).await?,
    ))
}

/// Revokes a key: the next request that presents it gets 401. The row stays, marked
/// `revoked`.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}/master-api-keys/{prefix}",
    tag = "people", params(("id" = i64, Path), ("prefix" = String, Path)),
    responses((status = 204), (status = 404, description = "No such key")))]
async fn revoke_key(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, prefix)): Path<(i64, String)>,
) -> ApiResult<StatusCode> {
    require_org_admin(&s, &caller, org).await?;
    if prefix.trim().is_empty() {
        return Err(StoreError::invalid("prefix", "must not be blank").into());
    }
    let mut ch = s.store.change(caller.actor()).await?;
    let key = api_keys::revoke(&mut ch, org, &prefix, s.auth.now_ms()).await?;
    ch.commit().await?;
    tracing::info!(
        organisation = org,
        key = key.id,
        "organisation API key revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
