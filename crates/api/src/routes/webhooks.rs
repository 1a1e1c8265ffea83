//! Webhooks: `/api/v1/environments/{api_key}/webhooks/` (environment administrators) and
//! `/api/v1/organisations/{id}/webhooks/` (organisation administrators), Flagsmith's paths and
//! `{url, enabled, secret}` fields, plus Flagstone's delivery log, redelivery and test event.
//!
//! A URL is refused unless it is http(s) and every address its host resolves to is allowed
//! ([`WebhookPolicy`]); the deliverer checks again at every attempt. The secret is shown in the
//! response that sets it and masked (`********`) afterwards; sending the mask back leaves it
//! unchanged.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::webhooks::{
    self, deliveries, Delivery, NewWebhook, Scope, Webhook, WebhookPatch,
};
use flagstone_store::{Actor, StoreError};
use flagstone_webhooks::address::Host;
use flagstone_webhooks::event as ev;
use flagstone_webhooks::{AddressPolicy, EventType, WebhookUrl};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

/// What the API enforces about webhook URLs.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebhookPolicy {
    pub addresses: AddressPolicy,
}

/// What GET shows instead of a secret.
pub const SECRET_MASK: &str = "********";

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(
        list_environment_webhooks,
        create_environment_webhook
    ))
    .routes(routes!(
        update_environment_webhook,
        delete_environment_webhook
    ))
    .routes(routes!(environment_deliveries))
    .routes(routes!(redeliver_environment))
    .routes(routes!(test_environment_webhook))
    .routes(routes!(
        list_organisation_webhooks,
        create_organisation_webhook
    ))
    .routes(routes!(
        update_organisation_webhook,
        delete_organisation_webhook
    ))
    .routes(routes!(organisation_deliveries))
    .routes(routes!(redeliver_organisation))
    .routes(routes!(test_organisation_webhook))
}

/// A webhook as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    id: i64,
    url: String,
    enabled: bool,
    /// The secret when this response set it; `********` when one is set; `""` when none.
    secret: String,
    /// Flagstone's opt-in event types.
    events: Vec<String>,
    #[serde(serialize_with = "flagstone_store::clock::iso::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created_at: i64,
    #[serde(serialize_with = "flagstone_store::clock::iso::serialize")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: i64,
}

fn out(w: Webhook, show_secret: bool) -> WebhookOut {
    let secret = if show_secret || w.secret.is_empty() {
        w.secret
    } else {
        SECRET_MASK.to_string()
    };
    WebhookOut {
        id: w.id,
        url: w.url,
        enabled: w.enabled,
        secret,
        events: w.events,
        created_at: w.created_at,
        updated_at: w.updated_at,
    }
}

/// Refuses a URL whose host resolves to an address the policy does not allow (400 naming it).
async fn check_address(policy: &WebhookPolicy, url: &str) -> ApiResult<()> {
    let invalid = |e: flagstone_webhooks::UrlRefusal| {
        ApiError::Store(StoreError::invalid("url", e.to_string()))
    };
    let parsed = WebhookUrl::parse(url).map_err(invalid)?;
    let ips = match parsed.host() {
        Host::Ip(ip) => vec![ip],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), parsed.port()))
            .await
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default(),
    };
    let host = match parsed.host() {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(n) => n,
    };
    policy.addresses.check_all(&host, &ips).map_err(invalid)
}

async fn list(s: &AppState, scope: Scope) -> ApiResult<Json<Vec<WebhookOut>>> {
    let mut tx = s.store.read().await?;
    let hooks = webhooks::list(&mut tx, scope).await?;
    Ok(Json(hooks.into_iter().map(|w| out(w, false)).collect()))
}

async fn create(
    s: &AppState,
    actor: &Actor,
    scope: Scope,
    new: NewWebhook,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    webhooks::validate(&new.url, new.secret.as_deref(), &new.events)?;
    check_address(&s.webhooks, &new.url).await?;
    let mut ch = s.store.change(actor).await?;
    let w = webhooks::create(&mut ch, scope, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(out(w, true))))
}

async fn update(
    s: &AppState,
    actor: &Actor,
    scope: Scope,
    id: i64,
    mut patch: WebhookPatch,
) -> ApiResult<Json<WebhookOut>> {
    if patch.secret.as_deref() == Some(SECRET_MASK) {
        patch.secret = None;
    }
    if let Some(url) = &patch.url {
        webhooks::validate(url, patch.secret.as_deref(), &[])?;
        check_address(&s.webhooks, url).await?;
    }
    let mut ch = s.store.change(actor).await?;
    let w = webhooks::update(&mut ch, scope, id, &patch).await?;
    ch.commit().await?;
    Ok(Json(out(w, patch.secret.is_some())))
}

async fn delete(s: &AppState, actor: &Actor, scope: Scope, id: i64) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(actor).await?;
    webhooks::delete(&mut ch, scope, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_deliveries(
    s: &AppState,
    scope: Scope,
    id: i64,
    uri: &Uri,
    p: &PageParams,
) -> ApiResult<Json<Paginated<Delivery>>> {
    let mut tx = s.store.read().await?;
    webhooks::get(&mut tx, scope, id).await?;
    let page = deliveries::list(&mut tx, id, p.request()).await?;
    Ok(Json(paginate(uri, p.request(), page)))
}

async fn redeliver(
    s: &AppState,
    scope: Scope,
    id: i64,
    delivery: i64,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let mut tx = s.store.write().await?;
    webhooks::get(&mut tx, scope, id).await?;
    let d = deliveries::redeliver(&mut tx, id, delivery, s.store.clock().now_ms()).await?;
    tx.commit().await?;
    s.store.webhook_notifier().notify_one();
    Ok((StatusCode::ACCEPTED, Json(d)))
}

/// `POST …/test/` body: which event to imitate (default `FLAG_UPDATED`).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    #[serde(default)]
    event_type: Option<String>,
}

/// The optional body of a test request: empty means the default event.
fn test_event(body: &[u8]) -> ApiResult<Option<TestEvent>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("invalid test request body: {e}")))
}

async fn test(
    s: &AppState,
    actor: &Actor,
    scope: Scope,
    id: i64,
    body: Option<TestEvent>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let name = body
        .and_then(|b| b.event_type)
        .unwrap_or_else(|| "FLAG_UPDATED".into());
    let event_type = EventType::parse(&name).ok_or_else(|| {
        let names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        ApiError::Store(StoreError::invalid(
            "event_type",
            format!("{name:?} is not an event type; choose from {names:?}"),
        ))
    })?;
    let now = s.store.clock().now_ms();
    let data = serde_json::json!({
        "test": true,
        "changed_by": actor.name,
        "timestamp": ev::timestamp(now),
        "detail": "A test event sent from Flagstone: no flag changed.",
        "new_state": null,
    });
    let mut tx = s.store.write().await?;
    webhooks::get(&mut tx, scope, id).await?;
    let event_id = format!("test-{}", uuid::Uuid::new_v4().simple());
    let d = deliveries::enqueue_one(&mut tx, id, event_type, &event_id, &data, now)
        .await?
        .ok_or_else(|| ApiError::Store(StoreError::conflict("event", "already queued")))?;
    tx.commit().await?;
    s.store.webhook_notifier().notify_one();
    Ok((StatusCode::ACCEPTED, Json(d)))
}

// --- environment webhooks ---

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/webhooks", tag = "webhooks",
    params(("api_key" = String, Path)), responses((status = 200, body = Vec<WebhookOut>)))]
async fn list_environment_webhooks(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    Path(_api_key): Path<String>,
) -> ApiResult<Json<Vec<WebhookOut>>> {
    let scope = Scope::Environment(permit.at.environment);
    list(&s, scope).await
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/webhooks", tag = "webhooks",
    params(("api_key" = String, Path)), request_body = NewWebhook,
    responses((status = 201, body = WebhookOut)))]
async fn create_environment_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    Path(_api_key): Path<String>,
    Json(new): Json<NewWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let scope = Scope::Environment(permit.at.environment);
    create(&s, permit.caller.actor(), scope, new).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/webhooks/{id}", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut)))]
async fn update_environment_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    Path((_api_key, id)): Path<(String, i64)>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<Json<WebhookOut>> {
    let scope = Scope::Environment(permit.at.environment);
    update(&s, permit.caller.actor(), scope, id, patch).await
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/webhooks/{id}", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path)), responses((status = 204)))]
async fn delete_environment_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    Path((_api_key, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let scope = Scope::Environment(permit.at.environment);
    delete(&s, permit.caller.actor(), scope, id).await
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<Delivery>)))]
async fn environment_deliveries(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    uri: Uri,
    Path((_api_key, id)): Path<(String, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Delivery>>> {
    let scope = Scope::Environment(permit.at.environment);
    list_deliveries(&s, scope, id, &uri, &p).await
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, body = Delivery)))]
async fn redeliver_environment(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    Path((_api_key, id, delivery)): Path<(String, i64, i64)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let scope = Scope::Environment(permit.at.environment);
    redeliver(&s, scope, id, delivery).await
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/webhooks/{id}/test", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body(content = Option<TestEvent>),
    responses((status = 202, body = Delivery)))]
async fn test_environment_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::EnvironmentAdmin>,
    Path((_api_key, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let scope = Scope::Environment(permit.at.environment);
    test(&s, permit.caller.actor(), scope, id, test_event(&body)?).await
}

// --- organisation webhooks ---

#[utoipa::path(get, path = "/api/v1/organisations/{id}/webhooks", tag = "webhooks",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<WebhookOut>)))]
async fn list_organisation_webhooks(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    Path(_org): Path<i64>,
) -> ApiResult<Json<Vec<WebhookOut>>> {
    let scope = Scope::Organisation(permit.at.0);
    list(&s, scope).await
}

#[utoipa::path(post, path = "/api/v1/organisations/{id}/webhooks", tag = "webhooks",
    params(("id" = i64, Path)), request_body = NewWebhook,
    responses((status = 201, body = WebhookOut)))]
async fn create_organisation_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    Path(_org): Path<i64>,
    Json(new): Json<NewWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let scope = Scope::Organisation(permit.at.0);
    create(&s, permit.caller.actor(), scope, new).await
}

#[utoipa::path(patch, path = "/api/v1/organisations/{id}/webhooks/{webhook_id}", tag = "webhooks",
    params(("id" = i64, Path), ("webhook_id" = i64, Path)), request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut)))]
async fn update_organisation_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    Path((_org, id)): Path<(i64, i64)>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<Json<WebhookOut>> {
    let scope = Scope::Organisation(permit.at.0);
    update(&s, permit.caller.actor(), scope, id, patch).await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{id}/webhooks/{webhook_id}", tag = "webhooks",
    params(("id" = i64, Path), ("webhook_id" = i64, Path)), responses((status = 204)))]
async fn delete_organisation_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    Path((_org, id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let scope = Scope::Organisation(permit.at.0);
    delete(&s, permit.caller.actor(), scope, id).await
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), ("webhook_id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<Delivery>)))]
async fn organisation_deliveries(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    uri: Uri,
    Path((_org, id)): Path<(i64, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Delivery>>> {
    let scope = Scope::Organisation(permit.at.0);
    list_deliveries(&s, scope, id, &uri, &p).await
}

#[utoipa::path(post, path = "/api/v1/organisations/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = i64, Path), ("webhook_id" = i64, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, body = Delivery)))]
async fn redeliver_organisation(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    Path((_org, id, delivery)): Path<(i64, i64, i64)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let scope = Scope::Organisation(permit.at.0);
    redeliver(&s, scope, id, delivery).await
}

#[utoipa::path(post, path = "/api/v1/organisations/{id}/webhooks/{webhook_id}/test", tag = "webhooks",
    params(("id" = i64, Path), ("webhook_id" = i64, Path)), request_body(content = Option<TestEvent>),
    responses((status = 202, body = Delivery)))]
async fn test_organisation_webhook(
    State(s): State<AppState>,
    permit: Permit<rules::OrganisationAdmin>,
    Path((_org, id)): Path<(i64, i64)>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let scope = Scope::Organisation(permit.at.0);
    test(&s, permit.caller.actor(), scope, id, test_event(&body)?).await
}
