//! Identity overrides for local-evaluation SDKs, streamed. They are kept out of the published
//! document (a million of them must not bloat what every edge loads); the SDK
//! environment-document endpoint appends them to the document, one identity at a time, in
//! Flagsmith's `IdentityOverride` shape. Main entry point: [`stream`].

use std::future::Future;

use futures_util::TryStreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::clock::iso8601;
use crate::values::decode_value;
use crate::{sql, Result, StoreError, Tx};

#[derive(sqlx::FromRow)]
struct Row {
    identity_id: i64,
    identifier: String,
    created_at: i64,
    override_id: i64,
    enabled: bool,
    value: Option<String>,
    uuid: String,
    feature_id: i64,
    feature_name: String,
    feature_type: String,
}

/// A stable uuid for an identity (the table has none): derived from the environment and the
/// identity id, so every build and every edge agree.
fn identity_uuid(environment_id: i64, identity_id: i64) -> String {
    let digest = Sha256::digest(format!("identity/{environment_id}/{identity_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

struct Identity {
    id: i64,
    identifier: String,
    created_at: i64,
    features: Vec<serde_json::Value>,
}

fn render(environment_id: i64, api_key: &str, i: &Identity) -> Vec<u8> {
    let v = json!({
        "identifier": i.identifier,
        "environment_api_key": api_key,
        "created_date": iso8601(i.created_at),
        "identity_uuid": identity_uuid(environment_id, i.id),
        "django_id": i.id,
        "composite_key": format!("{api_key}_{}", i.identifier),
        "dashboard_alias": null,
        "identity_traits": [],
        "identity_features": i.features,
    });
    serde_json::to_vec(&v).expect("json values serialize")
}

/// Calls `emit` with the JSON of each identity that has overrides in the environment (ordered
/// by identity id, its features by feature id), holding one identity in memory at a time.
/// `emit` returns false to stop early (the client went away). Returns how many were emitted.
pub async fn stream<F, Fut>(tx: &mut Tx, environment_id: i64, mut emit: F) -> Result<u64>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = bool>,
{
    let api_key: Option<String> = sql!(&mut *tx, |c| {
        sqlx::query_scalar("SELECT api_key FROM environments WHERE id = $1")
            .bind(environment_id)
            .fetch_optional(c)
            .await?
    });
    let api_key = api_key.ok_or(StoreError::not_found("environment"))?;
    let mut emitted = 0u64;
    let mut current: Option<Identity> = None;
    let stopped = sql!(&mut *tx, |c| {
        let mut rows = sqlx::query_as::<_, Row>(
            "SELECT i.id AS identity_id, i.identifier, i.created_at, o.id AS override_id, \
                 o.enabled, o.value, o.uuid, f.id AS feature_id, f.name AS feature_name, \
                 f.type AS feature_type \
             FROM identity_overrides o JOIN identities i ON i.id = o.identity_id \
             JOIN features f ON f.id = o.feature_id \
             WHERE o.environment_id = $1 ORDER BY i.id, f.id",
        )
        .bind(environment_id)
        .fetch(c);
        let mut stopped = false;
        while let Some(r) = rows.try_next().await? {
            if current.as_ref().map(|i| i.id) != Some(r.identity_id) {
                if let Some(done) = current.take() {
                    emitted += 1;
                    if !emit(render(environment_id, &api_key, &done)).await {
                        stopped = true;
                        break;
                    }
                }
                current = Some(Identity {
                    id: r.identity_id,
                    identifier: r.identifier.clone(),
                    created_at: r.created_at,
                    features: Vec::new(),
                });
            }
            let value = decode_value("identity override value", r.value.as_deref())?;
            if let Some(i) = current.as_mut() {
                i.features.push(json!({
                    "feature": {"id": r.feature_id, "name": r.feature_name, "type": r.feature_type},
                    "enabled": r.enabled,
                    "django_id": r.override_id,
                    "featurestate_uuid": r.uuid,
                    "feature_state_value": value,
                    "feature_segment": null,
                    "multivariate_feature_state_values": [],
                }));
            }
        }
        stopped
    });
    if !stopped {
        if let Some(done) = current.take() {
            emitted += 1;
            emit(render(environment_id, &api_key, &done)).await;
        }
    }
    Ok(emitted)
}
