//! One published revision of one environment, ready to serve: the compiled document for
//! identity evaluation, and the responses that do not depend on the caller (`/flags/` for client
//! and server keys, the document body) serialized once per revision, not once per request.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use axum::http::HeaderValue;
use bytes::{Buf, Bytes};
use flagstone_engine::{CompiledEnvironment, EnvironmentDocument};
use flagstone_store::document::{SdkFeature, SdkFeatures};
use serde_json::{json, Value};

use crate::usage::UsageCounters;

/// Where the document's `"identity_overrides":[]` sits, so the document endpoint can stream the
/// identity overrides (kept outside the stored document) into it.
#[derive(Debug, Clone, Copy)]
pub struct OverridesSlot {
    /// Byte offset just after `"identity_overrides":[`.
    pub at: usize,
}

/// Metadata of a feature that the SDK responses need.
#[derive(Debug, Clone)]
pub struct FeatureMeta {
    pub name: String,
    pub feature_type: String,
    /// `django_id` of the environment default: the flag item's `id`.
    pub state_id: Option<i64>,
    /// The constant start of this feature's flag item, serialized once per revision:
    /// `{"id":…,"feature":{…},"environment":…,"identity":null,"feature_segment":null,`.
    /// A response appends only what varies per identity (see [`write_flag_item`]).
    pub item_head: Box<[u8]>,
    /// What `GET /flags/{id}/multivariate-options/` lists ([`crate::routes`]).
    pub mv: MvOptions,
}

/// A feature's multivariate options as the legacy SDK endpoint lists them.
#[derive(Debug, Clone, Default)]
pub struct MvOptions {
    /// The environment default's value; `None` for an archived feature (Flagsmith reads the
    /// live state of unarchived features only).
    pub control_value: Option<Value>,
    /// The options' values, by option id.
    pub options: Box<[Value]>,
}

/// Appends one flag item: the feature's constant head, then `enabled`, the value and, for
/// identities, the variant. Writing bytes directly keeps the identity endpoint free of
/// per-request JSON trees (they cost ~10x the evaluation itself).
pub fn write_flag_item(
    out: &mut Vec<u8>,
    meta: &FeatureMeta,
    enabled: bool,
    value: &Value,
    variant: Option<Option<&str>>,
) {
    out.extend_from_slice(&meta.item_head);
    out.extend_from_slice(b"\"feature_state_value\":");
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(if enabled {
        b",\"enabled\":true"
    } else {
        b",\"enabled\":false"
    });
    if let Some(variant) = variant {
        out.extend_from_slice(b",\"variant\":");
        let _ = serde_json::to_writer(&mut *out, &variant);
    }
    out.push(b'}');
}

/// What a flag item shows of its feature and state, as Flagsmith's `SDKFeatureStateSerializer`
/// decides it.
struct ItemFields<'a> {
    environment_id: i64,
    feature_id: i64,
    name: &'a str,
    feature_type: &'a str,
    state_id: Option<i64>,
    /// The feature's SDK fields; `None` for a document published before they were (the item
    /// then has the environment document's `id`, `name`, `type` only).
    sdk: Option<&'a SdkFeature>,
    /// `hide_sensitive_data`: Flagsmith nulls the state's `id`, `environment`, `identity`,
    /// `feature_segment` and the feature's `created_date`, `description`, `initial_value`,
    /// `default_enabled` (`HideSensitiveFieldsSerializerMixin`).
    hide_sensitive: bool,
}

fn item_head(f: &ItemFields) -> Box<[u8]> {
    let hide = f.hide_sensitive;
    // Field order as Flagsmith's `FeatureSerializer` lists them.
    let feature = match f.sdk {
        Some(sdk) => json!({
            "id": f.feature_id,
            "name": f.name,
            "created_date": (!hide).then_some(&sdk.created_date),
            "description": if hide { None } else { sdk.description.as_ref() },
            "initial_value": if hide { None } else { sdk.initial_value.as_ref() },
            "default_enabled": (!hide).then_some(sdk.default_enabled),
            "type": f.feature_type,
        }),
        None => json!({"id": f.feature_id, "name": f.name, "type": f.feature_type}),
    };
    let head = json!({
        "id": if hide { None } else { f.state_id },
        "feature": feature,
        "environment": (!hide).then_some(f.environment_id),
        "identity": null,
        "feature_segment": null,
    })
    .to_string();
    // Drop the closing brace and add a comma: the varying fields follow.
    let mut bytes = head.into_bytes();
    bytes.pop();
    bytes.push(b',');
    bytes.into_boxed_slice()
}

fn mv_options(sdk: Option<&SdkFeature>, default_value: &Value) -> MvOptions {
    let archived = sdk.is_some_and(|f| f.is_archived);
    MvOptions {
        control_value: (!archived).then(|| default_value.clone()),
        options: sdk
            .map(|f| f.options.clone().into_boxed_slice())
            .unwrap_or_default(),
    }
}

pub struct EnvSnapshot {
    pub environment_id: i64,
    /// The project and organisation owning the environment (who may follow it, see
    /// [`crate::follower_keys`]).
    pub project_id: i64,
    pub organisation_id: i64,
    pub revision: i64,
    pub api_key: String,
    pub compiled: CompiledEnvironment,
    /// Feature id -> metadata.
    pub features: HashMap<i64, FeatureMeta>,
    pub server_key_only: HashSet<i64>,
    /// Features whose value can depend on who asks: with segment overrides or a multivariate
    /// split (identity overrides are not in the stored document). OFREP answers these with
    /// `TARGETING_KEY_MISSING` when no identity is given.
    pub targeted: HashSet<i64>,
    /// `environment.hide_disabled_flags`, falling back to the project's.
    pub hide_disabled: bool,
    pub allow_client_traits: bool,
    pub persist_trait_data: bool,
    pub stop_serving_flags: bool,
    pub use_identity_overrides_in_local_eval: bool,
    pub hide_sensitive_data: bool,
    /// The environment's `updated_at`, epoch seconds (the SSE event and header value).
    pub updated_at: f64,
    /// An earlier published document has an `updated_at` in the same second, so a whole-second
    /// `If-Modified-Since` naming that second may come from a client holding the earlier one.
    pub shares_second: bool,
    pub updated_at_header: HeaderValue,
    pub last_modified: HeaderValue,
    pub etag: HeaderValue,
    /// The stored document (without identity overrides), gzip-compressed as published: served
    /// as is to clients that accept gzip (SDKs do), decompressed on the fly otherwise. Keeping
    /// it compressed costs a tenth of the memory of the JSON (the 1.7 MB incident document is
    /// 0.2 MB).
    pub document_gz: Bytes,
    /// Where `identity_overrides` opens in the uncompressed document.
    pub overrides_slot: Option<OverridesSlot>,
    /// `GET /flags/` bodies.
    pub flags_client: Bytes,
    pub flags_server: Bytes,
    /// The SDK fields of its features as published beside the document (JSON), kept to hand on
    /// unchanged to edges that follow this one over HTTP and to the last-good cache.
    pub sdk_features_json: Option<Arc<str>>,
    /// What this revision served, for flag usage ([`crate::usage`]).
    pub usage: Arc<UsageCounters>,
    /// Estimated heap bytes this snapshot holds beyond the compressed document (which the
    /// registry holds anyway): what it costs the memory budget while resident.
    pub heap_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("document of environment {environment_id} is not valid gzip: {source}")]
    Gzip {
        environment_id: i64,
        source: std::io::Error,
    },
    #[error("document of environment {environment_id} is not valid JSON: {source}")]
    Json {
        environment_id: i64,
        source: serde_json::Error,
    },
    #[error("SDK feature fields of environment {environment_id} are not valid: {source}")]
    SdkFeatures {
        environment_id: i64,
        source: serde_json::Error,
    },
}

/// Parses Flagsmith's ISO `updated_at` to epoch seconds (naive values are UTC, as the SDKs read it).
pub(crate) fn parse_updated_at(s: Option<&str>) -> f64 {
    let Some(s) = s else { return 0.0 };
    let with_zone = if s.ends_with('Z') || s.contains('+') {
        s.to_string()
    } else {
        format!("{s}Z")
    };
    time::OffsetDateTime::parse(&with_zone, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
        .unwrap_or(0.0)
}

impl EnvSnapshot {
    /// Builds a snapshot from a published document (gzip-compressed JSON, as stored) and the
    /// SDK fields of its features published beside it.
    pub fn build(
        environment_id: i64,
        revision: i64,
        etag: &str,
        document_gz: Bytes,
        sdk_features: &SdkFeatures,
    ) -> Result<EnvSnapshot, SnapshotError> {
        let json = gunzip(&document_gz).map_err(|source| SnapshotError::Gzip {
            environment_id,
            source,
        })?;
        let doc: EnvironmentDocument =
            serde_json::from_slice(&json).map_err(|source| SnapshotError::Json {
                environment_id,
                source,
            })?;
        let overrides_slot = find_overrides_slot(&json);
        let json_len = json.len();
        // Only the compressed document is kept.
        drop(json);
        let compiled = CompiledEnvironment::from_document(&doc);
        let hide_disabled = doc
            .hide_disabled_flags
            .unwrap_or(doc.project.hide_disabled_flags);
        let server_key_only: HashSet<i64> = doc
            .project
            .server_key_only_feature_ids
            .iter()
            .copied()
            .collect();
        let targeted: HashSet<i64> = doc
            .feature_states
            .iter()
            .filter(|fs| !fs.multivariate_feature_state_values.is_empty())
            .chain(doc.project.segments.iter().flat_map(|s| &s.feature_states))
            .map(|fs| fs.feature.id)
            .collect();
        let features: HashMap<i64, FeatureMeta> = doc
            .feature_states
            .iter()
            .map(|fs| {
                (
                    fs.feature.id,
                    FeatureMeta {
                        name: fs.feature.name.clone(),
                        feature_type: fs.feature.feature_type.clone(),
                        state_id: fs.django_id,
                        item_head: item_head(&ItemFields {
                            environment_id: doc.id,
                            feature_id: fs.feature.id,
                            name: &fs.feature.name,
                            feature_type: &fs.feature.feature_type,
                            state_id: fs.django_id,
                            sdk: sdk_features.get(&fs.feature.id),
                            hide_sensitive: doc.hide_sensitive_data,
                        }),
                        mv: mv_options(sdk_features.get(&fs.feature.id), &fs.feature_state_value),
                    },
                )
            })
            .collect();
        let mut client = vec![b'['];
        let mut server = vec![b'['];
        for fs in &doc.feature_states {
            if hide_disabled && !fs.enabled {
                continue;
            }
            let meta = &features[&fs.feature.id];
            // Flagsmith quirk kept: with hide-disabled on, server-key-only features are not
            // filtered for client keys (§1.2 of the reference notes).
            let lists: &mut [&mut Vec<u8>] =
                if hide_disabled || !server_key_only.contains(&fs.feature.id) {
                    &mut [&mut client, &mut server]
                } else {
                    &mut [&mut server]
                };
            for out in lists.iter_mut() {
                if out.len() > 1 {
                    out.push(b',');
                }
                write_flag_item(out, meta, fs.enabled, &fs.feature_state_value, None);
            }
        }
        client.push(b']');
        server.push(b']');
        let usage = Arc::new(UsageCounters::new(
            environment_id,
            &doc.feature_states
                .iter()
                .map(|fs| {
                    let id = fs.feature.id;
                    (id, hide_disabled || !server_key_only.contains(&id))
                })
                .collect::<Vec<_>>(),
        ));
        let updated_at = parse_updated_at(doc.updated_at.as_deref());
        let secs = updated_at.max(0.0) as u64;
        let last_modified =
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let organisation = doc.project.organisation.as_ref();
        // Usually the same list (no server-key-only features): held once.
        let flags_client = Bytes::from(client.into_boxed_slice());
        let flags_server = if server[..] == flags_client[..] {
            flags_client.clone()
        } else {
            // Shrunk to fit: `Bytes::from(Vec)` would keep the spare capacity for the revision.
            Bytes::from(server.into_boxed_slice())
        };
        let bodies = flags_client.len()
            + if flags_server.as_ptr() == flags_client.as_ptr() {
                0
            } else {
                flags_server.len()
            };
        let heap_bytes = estimate_heap_bytes(json_len, &features, bodies);
        Ok(EnvSnapshot {
            environment_id,
            project_id: doc.project.id,
            organisation_id: organisation.map_or(0, |o| o.id),
            revision,
            api_key: doc.api_key.clone(),
            compiled,
            features,
            server_key_only,
            targeted,
            hide_disabled,
            allow_client_traits: doc.allow_client_traits,
            persist_trait_data: organisation.is_none_or(|o| o.persist_trait_data),
            stop_serving_flags: organisation.is_some_and(|o| o.stop_serving_flags),
            use_identity_overrides_in_local_eval: doc.use_identity_overrides_in_local_eval,
            hide_sensitive_data: doc.hide_sensitive_data,
            updated_at,
            shares_second: false,
            updated_at_header: header(&updated_at.to_string()),
            last_modified: header(&last_modified),
            // The revision is part of the tag: identity overrides are served with the document
            // but are not in the stored body, so the body's hash alone would not change.
            etag: header(&format!("\"{etag}-{revision}\"")),
            document_gz,
            overrides_slot,
            flags_client,
            flags_server,
            sdk_features_json: None,
            usage,
            heap_bytes,
        })
    }

    /// Keeps the SDK feature fields (as published, JSON) the snapshot was built with.
    pub fn with_sdk_features_json(mut self, json: Option<&str>) -> EnvSnapshot {
        self.sdk_features_json = json.map(Arc::from);
        self
    }

    /// Records whether an earlier published document shares this one's second (see
    /// [`EnvSnapshot::shares_second`]).
    pub fn sharing_its_second(mut self, shares: bool) -> EnvSnapshot {
        self.shares_second = shares;
        self
    }

    /// The document's own tag (the store's hash of its body), without the revision that
    /// [`EnvSnapshot::etag`] adds.
    pub fn document_etag(&self) -> &str {
        let tag = self.etag.to_str().unwrap_or("").trim_matches('"');
        let suffix = format!("-{}", self.revision);
        tag.strip_suffix(&suffix).unwrap_or(tag)
    }

    pub fn flags_body(&self, server_key: bool) -> Bytes {
        if server_key {
            self.flags_server.clone()
        } else {
            self.flags_client.clone()
        }
    }
}

/// The heap a snapshot holds, estimated from what it is built of: the `/flags/` bodies and
/// feature items exactly, the compiled document (rules, values, maps) as a share of the
/// uncompressed JSON it was compiled from. Calibrated with a counting allocator
/// (`tests/snapshot_memory.rs` keeps the estimate within a factor of the truth).
fn estimate_heap_bytes(
    json_len: usize,
    features: &HashMap<i64, FeatureMeta>,
    bodies: usize,
) -> usize {
    /// The struct, its header values, hash sets and usage counters, per snapshot.
    const FIXED: usize = 1024;
    /// A feature's map slots, metadata (strings' headers, multivariate options) and usage
    /// counter slots.
    const PER_FEATURE: usize = 300;
    let items: usize = features
        .values()
        .map(|m| PER_FEATURE + m.item_head.len() + m.name.len() + m.feature_type.len())
        .sum();
    // The compiled document: measured 2.9x its JSON for 20 plain features, 1.5x for the
    // incident's segment-heavy document.
    FIXED + bodies + items + 2 * json_len
}

/// Decompresses a gzip document into a buffer sized from its trailer (the uncompressed size
/// modulo 2^32), not grown by doubling.
pub(crate) fn gunzip(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let hint = gz
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes(gz[at..].try_into().expect("4 bytes")) as usize)
        .unwrap_or(0);
    // deflate expands at most ~1032:1; a bogus trailer must not reserve more than that.
    let mut out = Vec::with_capacity(hint.min(gz.len().saturating_mul(1032)));
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out)?;
    Ok(out)
}

/// Decompresses a gzip document piece by piece, for streaming it to clients that do not accept
/// gzip.
pub struct Gunzip {
    decoder: flate2::bufread::GzDecoder<bytes::buf::Reader<Bytes>>,
}

impl Gunzip {
    pub fn new(gz: Bytes) -> Gunzip {
        Gunzip {
            decoder: flate2::bufread::GzDecoder::new(gz.reader()),
        }
    }

    /// The next at most `max` bytes of the document (fewer only at its end; empty at the end).
    pub fn next_chunk(&mut self, max: usize) -> std::io::Result<Bytes> {
        let mut out = vec![0; max];
        let mut filled = 0;
        while filled < max {
            match self.decoder.read(&mut out[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.truncate(filled);
        Ok(Bytes::from(out))
    }
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Finds the top-level `"identity_overrides":[` . Inside JSON strings quotes are escaped, so the
/// only unescaped occurrence of this byte sequence is the key itself.
fn find_overrides_slot(json: &[u8]) -> Option<OverridesSlot> {
    const KEY: &[u8] = b"\"identity_overrides\":[";
    json.windows(KEY.len())
        .position(|w| w == KEY)
        .map(|p| OverridesSlot { at: p + KEY.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(sdk: Option<&SdkFeature>, hide_sensitive: bool) -> ItemFields<'_> {
        ItemFields {
            environment_id: 3,
            feature_id: 9,
            name: "banner \"x\"",
            feature_type: "MULTIVARIATE",
            state_id: Some(7),
            sdk,
            hide_sensitive,
        }
    }

    fn sdk() -> SdkFeature {
        SdkFeature {
            created_date: "2026-11-30T09:16:06.123000Z".into(),
            description: Some("the banner".into()),
            initial_value: Some("42".into()),
            default_enabled: true,
            is_archived: false,
            options: Vec::new(),
        }
    }

    fn head_json(f: &ItemFields) -> Value {
        let mut bytes = item_head(f).into_vec();
        bytes.pop();
        bytes.push(b'}');
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn items_carry_the_sdk_feature_fields_in_flagsmith_order() {
        let sdk = sdk();
        let head = head_json(&fields(Some(&sdk), false));
        assert_eq!(
            head,
            json!({"id": 7, "feature": {"id": 9, "name": "banner \"x\"",
                       "created_date": "2026-11-30T09:16:06.123000Z",
                       "description": "the banner", "initial_value": "42",
                       "default_enabled": true, "type": "MULTIVARIATE"},
                   "environment": 3, "identity": null, "feature_segment": null})
        );
        let keys: Vec<&String> = head["feature"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "created_date",
                "description",
                "initial_value",
                "default_enabled",
                "type"
            ]
        );
    }

    #[test]
    fn hide_sensitive_data_nulls_what_flagsmith_nulls() {
        let sdk = sdk();
        let head = head_json(&fields(Some(&sdk), true));
        assert_eq!(
            head,
            json!({"id": null, "feature": {"id": 9, "name": "banner \"x\"",
                       "created_date": null, "description": null, "initial_value": null,
                       "default_enabled": null, "type": "MULTIVARIATE"},
                   "environment": null, "identity": null, "feature_segment": null})
        );
    }

    #[test]
    fn written_items_are_the_flagsmith_item_json() {
        let meta = FeatureMeta {
            name: "banner \"x\"".into(),
            feature_type: "MULTIVARIATE".into(),
            state_id: Some(7),
            item_head: item_head(&fields(None, false)),
            mv: MvOptions::default(),
        };
        let mut out = Vec::new();
        write_flag_item(&mut out, &meta, true, &json!(1.5), Some(Some("v1")));
        let item: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            item,
            json!({"id": 7, "feature": {"id": 9, "name": "banner \"x\"", "type": "MULTIVARIATE"},
                   "environment": 3, "identity": null, "feature_segment": null,
                   "feature_state_value": 1.5, "enabled": true, "variant": "v1"})
        );
        out.clear();
        write_flag_item(&mut out, &meta, false, &Value::Null, None);
        let item: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(item["enabled"], false);
        assert!(item["feature_state_value"].is_null());
        assert!(item.get("variant").is_none());
    }

    #[test]
    fn parses_updated_at_forms() {
        assert_eq!(parse_updated_at(Some("1970-01-01T00:00:10Z")), 10.0);
        assert_eq!(parse_updated_at(Some("1970-01-01T00:00:10.500000")), 10.5);
        assert_eq!(parse_updated_at(Some("garbage")), 0.0);
        assert_eq!(parse_updated_at(None), 0.0);
    }

    #[test]
    fn finds_the_overrides_slot_and_not_escaped_lookalikes() {
        let j = br#"{"a":"\"identity_overrides\":[","identity_overrides":[],"b":1}"#;
        let slot = find_overrides_slot(j).unwrap();
        assert_eq!(&j[slot.at..slot.at + 1], b"]");
        assert!(j[..slot.at].ends_with(b"\"identity_overrides\":["));
        assert!(!j[..slot.at - 25].ends_with(b"\"identity_overrides\":["));
    }
}
