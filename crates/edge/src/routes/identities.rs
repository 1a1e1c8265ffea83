//! `GET /api/v1/identities/?identifier=…` and `POST /api/v1/identities/`: an identity's flags,
//! with Flagsmith's precedence (identity override, then segment override, then environment
//! default). Stored traits and overrides come from a per-edge cache in front of the store; the
//! request's traits are merged over them, and persisted behind the request unless transient.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use flagstone_engine::IdentityContext;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{caller, json_headers};
use crate::auth::Caller;
use crate::error::SdkError;
use crate::identity_cache::StoredIdentity;
use crate::new_identities::Admission;
use crate::query::StrictQuery;
use crate::snapshot::write_flag_item;
use crate::traits_writer::TraitWrite;
use crate::EdgeState;

#[derive(Deserialize)]
pub(crate) struct IdentifyBody {
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    traits: Option<Vec<TraitIn>>,
    #[serde(default)]
    transient: Option<bool>,
}

#[derive(Deserialize)]
struct TraitIn {
    trait_key: String,
    #[serde(default)]
    trait_value: Value,
    #[serde(default)]
    transient: Option<bool>,
}

pub(crate) async fn get_identity(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery,
) -> Result<Response, SdkError> {
    let c = caller(&state, &headers).await?;
    let Some(identifier) = q.get("identifier").filter(|i| !i.is_empty()) else {
        // Flagsmith answers a missing or empty identifier 200 with this body (its SDKs read
        // `detail`), not 400.
        return Ok(axum::Json(json!({"detail": "Missing identifier"})).into_response());
    };
    let transient = q.get("transient").is_some_and(|t| t == "true" || t == "1");
    let resp = identify(&state, &c, identifier.clone(), Vec::new(), transient).await?;
    respond(&c, resp, q.get("feature").map(String::as_str))
}

pub(crate) async fn post_identity(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<axum::Json<IdentifyBody>, JsonRejection>,
) -> Result<Response, SdkError> {
    let c = caller(&state, &headers).await?;
    let axum::Json(body) = body.map_err(|e| SdkError::BadRequest(e.body_text()))?;
    let mut incoming = Vec::new();
    let traits_allowed = c.server || c.snap.allow_client_traits;
    for t in body.traits.unwrap_or_default() {
        if !traits_allowed {
            break;
        }
        incoming.push(validate_trait(t)?);
    }
    let transient = body.transient.unwrap_or(false);
    let resp = match body.identifier.filter(|i| !i.is_empty()) {
        Some(identifier) => identify(&state, &c, identifier, incoming, transient).await?,
        // No identifier: a fully transient identity, named after its traits as Flagsmith does.
        None => {
            let identifier = transient_identifier(&incoming);
            identify(&state, &c, identifier, incoming, true).await?
        }
    };
    respond(&c, resp, None)
}

/// A validated incoming trait: key, value (`None` deletes), transient.
pub(crate) type IncomingTrait = (String, Option<Value>, bool);

/// An incoming trait as the store would write it. Its key and value are checked with the rest of
/// the request's traits in [`identify`], by the store's rules.
fn validate_trait(t: TraitIn) -> Result<IncomingTrait, SdkError> {
    let value = trait_value(t.trait_value);
    Ok((t.trait_key, value, t.transient.unwrap_or(false)))
}

/// A trait value as sent by a client, as Flagsmith keeps it: `null` deletes the trait (`None`),
/// scalars are kept as they are, any other JSON as its string form.
pub(crate) fn trait_value(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => Some(v),
        other => Some(Value::String(other.to_string())),
    }
}

/// The store's rules for trait writes with the project's limits, checked before anything is
/// answered or queued: what the edge accepts is what the store keeps (transient traits count
/// towards the request, not towards the identity). `all` is every incoming trait, `transient`
/// says which of them are transient.
async fn check_traits(
    state: &EdgeState,
    c: &Caller,
    stored: &StoredIdentity,
    all: &[(String, Option<Value>)],
    transient_traits: &[bool],
    transient: bool,
) -> Result<(), SdkError> {
    use flagstone_store::identities::traits::{validate_batch, validate_identity_total};
    let limits = state.limits.get(&state.source, c.snap.environment_id).await;
    validate_batch(all, &limits).map_err(refused)?;
    if !transient && c.snap.persist_trait_data {
        // Only growth is refused: writes that add no key the identity lacks need no count
        // (SDKs re-send the traits an identity has on every call).
        let grows = all
            .iter()
            .zip(transient_traits)
            .any(|((k, v), trait_transient)| {
                !trait_transient && v.is_some() && !stored.traits.contains_key(k)
            });
        if !grows {
            return Ok(());
        }
        if transient_traits.contains(&true) {
            let kept: Vec<(String, Option<Value>)> = all
                .iter()
                .zip(transient_traits)
                .filter(|(_, trait_transient)| !**trait_transient)
                .map(|(t, _)| t.clone())
                .collect();
            validate_identity_total(stored.traits.keys().map(String::as_str), &kept, &limits)
        } else {
            validate_identity_total(stored.traits.keys().map(String::as_str), all, &limits)
        }
        .map_err(refused)?;
    }
    Ok(())
}

/// A store validation refusal as the SDK API reports it (`{field: [message]}`, 400).
pub(crate) fn refused(e: flagstone_store::StoreError) -> SdkError {
    match e {
        flagstone_store::StoreError::Invalid { field, detail } => SdkError::Invalid {
            field,
            message: detail,
        },
        flagstone_store::StoreError::LimitExceeded { limit, max, detail } => {
            SdkError::LimitExceeded { limit, max, detail }
        }
        other => SdkError::BadRequest(other.to_string()),
    }
}

fn transient_identifier(traits: &[IncomingTrait]) -> String {
    let mut present: Vec<(&str, &Value)> = traits
        .iter()
        .filter_map(|(k, v, _)| v.as_ref().map(|v| (k.as_str(), v)))
        .collect();
    if present.is_empty() {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    present.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (k, v) in present {
        h.update(k.as_bytes());
        h.update(flagstone_engine::pyfmt::value_str(v).as_bytes());
    }
    hex::encode(h.finalize())
}

pub(crate) struct Identified {
    pub(crate) identifier: String,
    pub(crate) traits: IndexMap<String, Value>,
    pub(crate) stored: Arc<StoredIdentity>,
}

/// An identity's stored data with the request's traits merged over it; the traits are checked
/// by the store's rules and, unless `transient`, persisted behind the request.
pub(crate) async fn identify(
    state: &EdgeState,
    c: &Caller,
    identifier: String,
    incoming: Vec<IncomingTrait>,
    transient: bool,
) -> Result<Identified, SdkError> {
    let prepared = prepare(state, c, identifier, incoming, transient).await?;
    Ok(commit(state, c, prepared).await)
}

/// An identification decided but not yet written: everything that can refuse the request
/// (identifier, trait rules and limits, the new-identity bound) has run, nothing is queued.
/// Requests that touch several identities prepare them all before committing any, so a refusal
/// writes nothing.
pub(crate) struct Prepared {
    identified: Identified,
    /// `None` writes nothing.
    write: Option<PendingWrite>,
}

/// The traits to persist (`None` deletes) and the identity's traits once they are.
struct PendingWrite {
    writes: Vec<(String, Option<Value>)>,
    persisted: IndexMap<String, Value>,
}

impl Prepared {
    /// Whether committing this creates an identity the store does not hold yet.
    pub(crate) fn creates_identity(&self) -> bool {
        self.write.is_some() && !self.identified.stored.exists
    }

    /// The traits this writes (`None` deletes); empty when it writes nothing.
    pub(crate) fn writes(&self) -> &[(String, Option<Value>)] {
        self.write.as_ref().map_or(&[], |w| w.writes.as_slice())
    }
}

/// Checks an identification and decides what it writes; see [`Prepared`].
pub(crate) async fn prepare(
    state: &EdgeState,
    c: &Caller,
    identifier: String,
    incoming: Vec<IncomingTrait>,
    transient: bool,
) -> Result<Prepared, SdkError> {
    // The store's rule (length, no control or bidi override characters), for transient
    // identities too: what the edge answers for is what the store would keep.
    flagstone_store::identities::validate_identifier(&identifier).map_err(refused)?;
    let snap = &c.snap;
    let stored = stored_identity(state, snap.environment_id, snap.revision, &identifier).await;
    // The incoming traits as the store takes them, and which are transient (moved, not copied).
    let transient_traits: Vec<bool> = incoming.iter().map(|t| t.2).collect();
    let all: Vec<(String, Option<Value>)> = incoming.into_iter().map(|(k, v, _)| (k, v)).collect();
    if !all.is_empty() {
        check_traits(state, c, &stored, &all, &transient_traits, transient).await?;
    }
    // The identity's traits for this request: the stored ones with the incoming merged over
    // them. Setting a trait to the value it has changes nothing (and keeps its position).
    let mut traits = stored.traits.clone();
    for (key, value) in &all {
        match value {
            Some(v) if traits.get(key) != Some(v) => {
                traits.insert(key.clone(), v.clone());
            }
            Some(_) => {}
            None => {
                traits.shift_remove(key);
            }
        }
    }
    // Re-sending the traits an identity already has (SDKs do, on every call) writes nothing.
    let unchanged = stored.exists
        && all
            .iter()
            .zip(&transient_traits)
            .filter(|(_, trait_transient)| !**trait_transient)
            .all(|((k, v), _)| match v {
                Some(v) => stored.traits.get(k) == Some(v),
                None => !stored.traits.contains_key(k),
            });
    let persist = !transient && snap.persist_trait_data && !unchanged;
    if persist && !stored.exists {
        // A new identity: bounded per environment and minute, decided before anything is
        // written or answered.
        if let Admission::Refused { retry_after_secs } =
            state.new_identities.admit(snap.environment_id)
        {
            metrics::counter!(crate::metrics::NEW_IDENTITIES_REFUSED_TOTAL).increment(1);
            return Err(SdkError::TooManyNewIdentities {
                max: state.new_identities.per_minute(),
                retry_after_secs,
            });
        }
    }
    let write = persist.then(|| {
        // What the store will hold: the stored traits with the non-transient writes applied.
        let mut persisted = stored.traits.clone();
        let mut writes = Vec::with_capacity(all.len());
        for ((key, value), trait_transient) in all.into_iter().zip(transient_traits) {
            if trait_transient {
                continue;
            }
            match &value {
                Some(v) => persisted.insert(key.clone(), v.clone()),
                None => persisted.shift_remove(&key),
            };
            writes.push((key, value));
        }
        PendingWrite { writes, persisted }
    });
    Ok(Prepared {
        identified: Identified {
            identifier,
            traits,
            stored,
        },
        write,
    })
}

/// Queues a prepared identification's write (if any) for the trait writer and shows it to this
/// edge's identity cache at once (other edges see it within the cache TTL).
pub(crate) async fn commit(state: &EdgeState, c: &Caller, prepared: Prepared) -> Identified {
    let Prepared { identified, write } = prepared;
    if let Some(PendingWrite { writes, persisted }) = write {
        let snap = &c.snap;
        state
            .traits
            .submit(TraitWrite {
                environment_id: snap.environment_id,
                identifier: identified.identifier.clone(),
                traits: writes,
            })
            .await;
        state.identities.put(
            snap.environment_id,
            &identified.identifier,
            snap.revision,
            Arc::new(StoredIdentity {
                exists: true,
                traits: persisted,
                overrides: identified.stored.overrides.clone(),
            }),
        );
    }
    identified
}

/// Writes the identity's flag items (comma-separated), with identity overrides applied and the
/// caller's filters; only the feature named `only` if given. Returns how many were written.
fn write_flags(
    c: &Caller,
    ctx: &IdentityContext,
    overrides: &[(i64, bool, Value)],
    only: Option<&str>,
    out: &mut Vec<u8>,
) -> usize {
    let snap = &c.snap;
    let eval = snap.compiled.evaluate_detailed(Some(ctx));
    let mut written = 0;
    for f in &eval.flags {
        let Some(feature_id) = f.feature_id else {
            continue;
        };
        let Some(meta) = snap.features.get(&feature_id) else {
            continue;
        };
        if only.is_some_and(|name| name != meta.name) {
            continue;
        }
        let (enabled, value, variant) = match overrides.iter().find(|o| o.0 == feature_id) {
            Some((_, enabled, value)) => (*enabled, value, None),
            None => (f.enabled, f.value, f.variant.as_result_variant()),
        };
        if !c.serves(feature_id, enabled) {
            continue;
        }
        if written > 0 {
            out.push(b',');
        }
        write_flag_item(out, meta, enabled, value, Some(variant));
        written += 1;
    }
    written
}

/// The identity's stored traits and overrides, from the cache or the store. If the store cannot
/// be reached the identity is evaluated with the request's traits alone: flags keep flowing.
pub(crate) async fn stored_identity(
    state: &EdgeState,
    environment_id: i64,
    revision: i64,
    identifier: &str,
) -> Arc<StoredIdentity> {
    if let Some(hit) = state.identities.get(environment_id, identifier, revision) {
        return hit;
    }
    let loaded = load_stored_identity(&state.source, environment_id, identifier).await;
    let identity = match loaded {
        Ok(identity) => identity,
        Err(e) => {
            metrics::counter!("flagstone_edge_identity_load_failures_total").increment(1);
            tracing::warn!(environment = environment_id, error = %e, "loading an identity failed; evaluating without stored data");
            return Arc::new(StoredIdentity::default());
        }
    };
    let identity = Arc::new(identity);
    state
        .identities
        .put(environment_id, identifier, revision, identity.clone());
    identity
}

/// An identity's stored data, from the store or (an edge without one) from the upstream.
pub(crate) async fn load_stored_identity(
    source: &crate::Source,
    environment_id: i64,
    identifier: &str,
) -> Result<StoredIdentity, String> {
    let store = match source {
        crate::Source::Store(store) => store,
        crate::Source::Upstream(client) => {
            return client
                .stored_identity(environment_id, identifier)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let loaded = async {
        let mut tx = store.read().await?;
        flagstone_store::identities::load_identity(&mut tx, environment_id, identifier).await
    }
    .await
    .map_err(|e| e.to_string())?;
    Ok(match loaded {
        Some((_, traits, overrides)) => StoredIdentity {
            exists: true,
            traits: traits
                .into_iter()
                .map(|t| (t.trait_key, t.trait_value))
                .collect(),
            overrides: overrides
                .into_iter()
                .map(|o| (o.feature, o.enabled, o.feature_state_value))
                .collect(),
        },
        None => StoredIdentity::default(),
    })
}

fn respond(c: &Caller, r: Identified, feature: Option<&str>) -> Result<Response, SdkError> {
    let headers = json_headers(&c.snap.updated_at_header);
    let ctx = IdentityContext::new(r.identifier, r.traits);
    let overrides = &r.stored.overrides;
    // The environment's /flags/ body is a good guess at the size of an identity's flags.
    let mut out = Vec::with_capacity(c.snap.flags_server.len() + 256);
    if let Some(name) = feature {
        if write_flags(c, &ctx, overrides, Some(name), &mut out) == 0 {
            return Err(SdkError::FeatureNotFound);
        }
        count_one(c, name);
        return Ok((headers, out).into_response());
    }
    out.extend_from_slice(b"{\"identifier\":");
    let _ = serde_json::to_writer(&mut out, &ctx.identifier);
    out.extend_from_slice(b",\"flags\":[");
    write_flags(c, &ctx, overrides, None, &mut out);
    c.snap.usage.listed(c.server);
    out.extend_from_slice(b"],\"traits\":[");
    if !c.snap.hide_sensitive_data {
        // Written directly (the bytes `{"trait_key": k, "trait_value": v}` serializes to),
        // without building a JSON object per trait.
        for (i, (k, v)) in ctx.traits.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"trait_key\":");
            let _ = serde_json::to_writer(&mut out, k);
            out.extend_from_slice(b",\"trait_value\":");
            let _ = serde_json::to_writer(&mut out, v);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"]}");
    Ok((headers, out).into_response())
}

/// Counts a one-flag answer for flag usage (rare path: the name is looked up).
fn count_one(c: &Caller, name: &str) {
    if let Some((&id, _)) = c.snap.features.iter().find(|(_, m)| m.name == name) {
        c.snap.usage.served_one(id);
    }
}
