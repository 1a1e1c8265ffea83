//! `GET /api/v1/environments/{api_key}/identities/{id}/evaluation/`: the flags an identity gets
//! and why. The identity's stored traits and overrides are evaluated by the engine against the
//! environment's *published* document — what SDKs are served right now — exactly as the edge
//! does: segment overrides by priority, multivariate buckets, then identity overrides on top.
//! Beyond Flagsmith (its dashboard shows overrides, not explanations).

use axum::extract::State;
use flagstone_engine::{
    CompiledEnvironment, EnvironmentDocument, IdentityContext, Reason, SegmentMatch, VariantChoice,
};
use flagstone_store::document::stored;
use flagstone_store::identities::{overrides, traits};
use flagstone_store::StoreError;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::env_and_identity;
use crate::auth::permit::{rules, Permit};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(evaluate_identity))
}

/// Why a flag has its value, as a typed value.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Decision {
    /// No override applied: the environment's default state.
    EnvironmentDefault,
    /// A segment override applied: the first matching segment by priority.
    SegmentOverride,
    /// A multivariate variant (or control) was picked by the identity's bucket.
    Split,
    /// The identity's own override, which wins over everything else.
    IdentityOverride,
}

#[derive(Serialize, utoipa::ToSchema)]
struct MatchedSegment {
    id: Option<i64>,
    name: String,
}

impl From<&SegmentMatch<'_>> for MatchedSegment {
    fn from(m: &SegmentMatch<'_>) -> Self {
        MatchedSegment {
            id: m
                .metadata
                .and_then(|md| md.get("id"))
                .and_then(Value::as_i64),
            name: m.name.to_owned(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct ExplainedFlag {
    feature: Option<i64>,
    name: String,
    enabled: bool,
    #[schema(value_type = Object)]
    value: Value,
    /// The variant's key, `control`, or null when no split applied.
    variant: Option<String>,
    decision: Decision,
    /// The segment whose override decided, for `segment_override`.
    segment: Option<MatchedSegment>,
    /// Flagsmith's reason text (`DEFAULT`, `TARGETING_MATCH; segment=beta`, `SPLIT; weight=50`,
    /// `IDENTITY_OVERRIDE`).
    reason: String,
    /// Not sent to SDKs: disabled while the environment hides disabled flags.
    hidden: bool,
    /// Sent to server-side keys only.
    server_key_only: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct IdentityEvaluation {
    identifier: String,
    /// The published revision evaluated (what SDKs are served now).
    revision: i64,
    /// The environment's current revision: newer than `revision` while a publish is pending.
    current_revision: i64,
    #[schema(value_type = Object)]
    traits: serde_json::Map<String, Value>,
    /// Every segment the identity belongs to.
    segments: Vec<MatchedSegment>,
    flags: Vec<ExplainedFlag>,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/evaluation",
    tag = "identities", params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = IdentityEvaluation),
        (status = 409, description = "The environment has no published document yet")))]
async fn evaluate_identity(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<Json<IdentityEvaluation>> {
    let mut tx = s.store.read().await?;
    let (env, identity) = env_and_identity(&mut tx, &api_key, id).await?;
    let traits = traits::all(&mut tx, identity.id).await?;
    let overrides = overrides::all(&mut tx, identity.id).await?;
    let doc = stored::load(&mut tx, env.id).await?.ok_or_else(|| {
        StoreError::conflict(
            "environment",
            "the environment has no published document yet; try again in a moment",
        )
    })?;
    drop(tx);
    let json = doc.json().map_err(|e| {
        ApiError::Store(StoreError::Corrupt {
            what: "environment_documents.body",
            detail: e.to_string(),
        })
    })?;
    let document: EnvironmentDocument = serde_json::from_slice(&json).map_err(|e| {
        ApiError::Store(StoreError::Corrupt {
            what: "environment_documents.body",
            detail: e.to_string(),
        })
    })?;
    drop(json);
    let compiled = CompiledEnvironment::from_document(&document);
    let hide_disabled = document
        .hide_disabled_flags
        .unwrap_or(document.project.hide_disabled_flags);
    let server_key_only = &document.project.server_key_only_feature_ids;

    let trait_map: serde_json::Map<String, Value> = traits
        .into_iter()
        .map(|t| (t.trait_key, t.trait_value))
        .collect();
    let ctx = IdentityContext::new(
        identity.identifier.clone(),
        trait_map.clone().into_iter().collect(),
    );
    let evaluation = compiled.evaluate_detailed(Some(&ctx));
    let segment_of = |name: &str| {
        evaluation
            .segments
            .iter()
            .find(|m| m.name == name)
            .map(|m| MatchedSegment {
                id: m
                    .metadata
                    .and_then(|md| md.get("id"))
                    .and_then(Value::as_i64),
                name: m.name.to_owned(),
            })
    };
    let flags = evaluation
        .flags
        .iter()
        .map(|f| {
            let own = f
                .feature_id
                .and_then(|fid| overrides.iter().find(|o| o.feature == fid));
            let (enabled, value, variant, decision, segment, reason) = match own {
                Some(o) => (
                    o.enabled,
                    o.feature_state_value.clone(),
                    None,
                    Decision::IdentityOverride,
                    None,
                    "IDENTITY_OVERRIDE".to_owned(),
                ),
                None => {
                    let decision = match (f.reason, f.variant) {
                        (Reason::TargetingMatch { .. }, _) => Decision::SegmentOverride,
                        (_, VariantChoice::Picked { .. } | VariantChoice::Control) => {
                            Decision::Split
                        }
                        _ => Decision::EnvironmentDefault,
                    };
                    let segment = match f.reason {
                        Reason::TargetingMatch { segment, .. } => segment_of(segment),
                        _ => None,
                    };
                    (
                        f.enabled,
                        f.value.clone(),
                        f.variant.as_result_variant().map(str::to_owned),
                        decision,
                        segment,
                        f.reason.as_str().to_owned(),
                    )
                }
            };
            ExplainedFlag {
                feature: f.feature_id,
                name: f.name.to_owned(),
                hidden: hide_disabled && !enabled,
                server_key_only: f.feature_id.is_some_and(|id| server_key_only.contains(&id)),
                enabled,
                value,
                variant,
                decision,
                segment,
                reason,
            }
        })
        .collect();
    let segments = evaluation
        .segments
        .iter()
        .map(|m| MatchedSegment {
            id: m
                .metadata
                .and_then(|md| md.get("id"))
                .and_then(Value::as_i64),
            name: m.name.to_owned(),
        })
        .collect();
    Ok(Json(IdentityEvaluation {
        identifier: identity.identifier,
        revision: doc.revision,
        current_revision: env.revision,
        traits: trait_map,
        segments,
        flags,
    }))
}
