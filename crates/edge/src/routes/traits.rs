//! Flagsmith's legacy SDK trait endpoints, which older SDKs (and scripts) still call:
//! `POST /api/v1/traits/` (one trait of one identity), `PUT /api/v1/traits/bulk/` (a list of
//! them, `null` deleting) and `POST /api/v1/traits/increment-value/`. They write through the
//! same path as `POST /api/v1/identities/`: the store's trait rules with the project's limits,
//! the new-identity bound, and the edge's trait writer behind the request.
//!
//! As at Flagsmith, they answer 403 when the organisation does not persist traits, and a client
//! key may set traits only where the environment allows client traits.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::caller;
use super::identities::{commit, identify, prepare, refused, stored_identity, trait_value};
use crate::auth::Caller;
use crate::error::SdkError;
use crate::EdgeState;

#[derive(Deserialize)]
pub(crate) struct IdentityRef {
    identifier: String,
}

#[derive(Deserialize)]
pub(crate) struct TraitBody {
    identity: IdentityRef,
    trait_key: String,
    /// Missing and `null` both read as `None`: refused for one trait, a deletion in bulk.
    #[serde(default)]
    trait_value: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct IncrementBody {
    identifier: String,
    trait_key: String,
    increment_by: Value,
}

/// Flagsmith's answer when trait persistence is off for the organisation.
const NOT_PERSISTED: &str = "Organisation is not authorised to store traits.";
/// Flagsmith's answer when a client key sets traits and client traits are off.
const CLIENT_TRAITS_OFF: &str = "Setting traits not allowed with client key.";

/// The caller, if it may write traits through these endpoints.
async fn writer(state: &EdgeState, headers: &HeaderMap) -> Result<Caller, SdkError> {
    let c = caller(state, headers).await?;
    if !c.snap.persist_trait_data {
        return Err(SdkError::Forbidden(NOT_PERSISTED));
    }
    if !(c.server || c.snap.allow_client_traits) {
        return Err(SdkError::Invalid {
            field: "non_field_errors".into(),
            message: CLIENT_TRAITS_OFF.into(),
        });
    }
    Ok(c)
}

fn body<T>(body: Result<axum::Json<T>, JsonRejection>) -> Result<T, SdkError> {
    body.map(|axum::Json(b)| b)
        .map_err(|e| SdkError::BadRequest(e.body_text()))
}

/// One trait in Flagsmith's answer shape.
fn trait_item(identifier: &str, key: &str, value: &Value) -> Value {
    json!({"identity": {"identifier": identifier}, "trait_key": key, "trait_value": value})
}

/// `POST /api/v1/traits/`: sets one trait of an identity (created if new); 200 with the trait.
pub(crate) async fn post_trait(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    b: Result<axum::Json<TraitBody>, JsonRejection>,
) -> Result<Response, SdkError> {
    let c = writer(&state, &headers).await?;
    let b = body(b)?;
    let Some(value) = b.trait_value.and_then(trait_value) else {
        return Err(SdkError::Invalid {
            field: "trait_value".into(),
            message: "This field may not be null.".into(),
        });
    };
    let answer = trait_item(&b.identity.identifier, &b.trait_key, &value);
    identify(
        &state,
        &c,
        b.identity.identifier,
        vec![(b.trait_key, Some(value), false)],
        false,
    )
    .await?;
    Ok(axum::Json(answer).into_response())
}

/// `PUT /api/v1/traits/bulk/`: sets (or, with a `null` value, deletes) traits of any number of
/// identities. Every identity is checked before any is written: one refusal writes nothing.
/// 200 with the traits set (deletions are not listed, as at Flagsmith).
pub(crate) async fn put_bulk(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    b: Result<axum::Json<Vec<TraitBody>>, JsonRejection>,
) -> Result<Response, SdkError> {
    let c = writer(&state, &headers).await?;
    let items = body(b)?;
    // The request's size is bounded as one request, whatever identities it spans.
    let all: Vec<(String, Option<Value>)> = items
        .iter()
        .map(|t| (t.trait_key.clone(), t.trait_value.clone()))
        .collect();
    let limits = state.limits.get(&state.source, c.snap.environment_id).await;
    flagstone_store::identities::traits::validate_batch(&all, &limits).map_err(refused)?;

    let mut answer = Vec::new();
    let mut by_identity: IndexMap<String, Vec<(String, Option<Value>, bool)>> = IndexMap::new();
    for t in items {
        let value = t.trait_value.and_then(trait_value);
        if let Some(v) = &value {
            answer.push(trait_item(&t.identity.identifier, &t.trait_key, v));
        }
        by_identity
            .entry(t.identity.identifier)
            .or_default()
            .push((t.trait_key, value, false));
    }
    let mut prepared = Vec::with_capacity(by_identity.len());
    for (identifier, traits) in by_identity {
        let p = prepare(&state, &c, identifier, traits, false).await?;
        // Deleting traits of an identity that does not exist creates nothing (Flagsmith's
        // bulk endpoint creates identities only for the traits it sets).
        let only_deletes = p.creates_identity() && p.writes().iter().all(|(_, v)| v.is_none());
        if !only_deletes {
            prepared.push(p);
        }
    }
    for p in prepared {
        commit(&state, &c, p).await;
    }
    Ok(axum::Json(answer).into_response())
}

/// `POST /api/v1/traits/increment-value/`: adds `increment_by` to an integer trait (a missing
/// trait counts as 0); 200 with `{trait_key, trait_value, identifier}`. A trait holding anything
/// but an integer is refused, as Flagsmith refuses it.
pub(crate) async fn post_increment(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    b: Result<axum::Json<IncrementBody>, JsonRejection>,
) -> Result<Response, SdkError> {
    let c = writer(&state, &headers).await?;
    let b = body(b)?;
    let Some(by) = integer(&b.increment_by) else {
        return Err(SdkError::Invalid {
            field: "increment_by".into(),
            message: "A valid integer is required.".into(),
        });
    };
    flagstone_store::identities::validate_identifier(&b.identifier).map_err(refused)?;
    // Read, add and write under one lock, so increments sent to this edge add up; the write is
    // visible to the next read at once through the identity cache.
    let _serial = state.increments.lock().await;
    let snap = &c.snap;
    let stored = stored_identity(&state, snap.environment_id, snap.revision, &b.identifier).await;
    let current = match stored.traits.get(&b.trait_key) {
        None => Some(0),
        Some(v) => v.as_i64(),
    };
    let Some(current) = current else {
        return Ok((
            StatusCode::BAD_REQUEST,
            axum::Json(json!(["Trait is not an integer."])),
        )
            .into_response());
    };
    let Some(sum) = current.checked_add(by) else {
        return Err(SdkError::Invalid {
            field: "increment_by".into(),
            message: format!("{current} + {by} does not fit in a 64-bit integer"),
        });
    };
    identify(
        &state,
        &c,
        b.identifier.clone(),
        vec![(b.trait_key.clone(), Some(json!(sum)), false)],
        false,
    )
    .await?;
    Ok(axum::Json(json!({
        "trait_key": b.trait_key,
        "trait_value": sum,
        "identifier": b.identifier,
    }))
    .into_response())
}

/// An integer as DRF's `IntegerField` reads one: a JSON integer, or a string holding one.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
