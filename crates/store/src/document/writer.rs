//! Writes the environment document top to bottom as rows arrive. It keeps at most one feature
//! state (with its multivariate values) and one segment's rules in memory; everything else is
//! already in the sink. Field names and shapes are Flagsmith's environment document (see
//! `flagstone_engine::EnvironmentDocument`).

use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::rows::{Header, OverrideItem, Row, SegmentRow};
use super::sink::BudgetedSink;
use super::BuildError;
use crate::clock::iso8601;
use crate::values::{decode_allocations, decode_value, MvAllocation};
use crate::StoreError;

#[derive(Serialize)]
struct FeatureOut<'a> {
    id: i64,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct FeatureSegmentOut {
    priority: i64,
}

#[derive(Serialize)]
struct MvOptionOut {
    id: i64,
    value: Value,
    key: Option<String>,
}

#[derive(Serialize)]
struct MvValueOut {
    /// Orders the variants (the engine walks them by this id): see [`MvValueIds`].
    id: Option<i64>,
    mv_fs_value_uuid: String,
    percentage_allocation: f64,
    multivariate_feature_option: MvOptionOut,
}

#[derive(Serialize)]
struct FeatureStateOut<'a> {
    feature: FeatureOut<'a>,
    enabled: bool,
    django_id: Option<i64>,
    featurestate_uuid: &'a str,
    feature_state_value: &'a Value,
    feature_segment: Option<FeatureSegmentOut>,
    multivariate_feature_state_values: &'a [MvValueOut],
}

/// The feature state being assembled from its rows (one per MV option).
struct PendingState {
    id: i64,
    /// `hash_id` as stored (see [`django_id`]).
    hash_id: Option<i64>,
    value_ids: MvValueIds,
    feature_id: i64,
    feature_name: String,
    feature_type: String,
    enabled: bool,
    value: Value,
    uuid: String,
    priority: Option<i64>,
    allocations: Vec<MvAllocation>,
    mv: Vec<MvValueOut>,
}

pub(crate) struct DocumentWriter {
    sink: BudgetedSink,
    /// The segment whose `feature_states` array is open.
    open_segment: Option<i64>,
    /// Elements already written to the open arrays (a comma goes before the next one).
    ids_written: bool,
    segments_written: bool,
    states_written: bool,
    pending: Option<PendingState>,
}

fn missing(column: &'static str) -> BuildError {
    BuildError::Store(StoreError::Corrupt {
        what: "document row",
        detail: format!("{column} is NULL"),
    })
}

/// A stable uuid for a multivariate value: the same feature state and option give the same
/// uuid in every build, so an unchanged environment rebuilds to an identical document (etag).
fn mv_value_uuid(state_uuid: &str, option_id: i64) -> String {
    let digest = Sha256::digest(format!("{state_uuid}/{option_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8: custom, name-derived
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    uuid::Uuid::from_bytes(b).to_string()
}

/// The `django_id` a state carries: its imported one (`hash_id`; 0 stands for a document
/// without one, whose uuid Flagsmith hashed), else its row id. It seeds variant bucketing.
fn django_id(row_id: i64, hash_id: Option<i64>) -> Option<i64> {
    match hash_id {
        None => Some(row_id),
        Some(0) => None,
        Some(id) => Some(id),
    }
}

/// The multivariate value ids of one state, which order its variants. A state created in
/// Flagstone uses its option ids. An imported state keeps the document's value ids and uuids
/// (`mv_value_ids`); an option added to it later comes after them (ids above the largest
/// imported one, in option order), as a new value does in Flagsmith.
#[derive(Default)]
struct MvValueIds {
    imported: Vec<(i64, Option<i64>, Option<String>)>,
    /// Options not in `imported`, in the order their rows arrive (option id).
    added: i64,
    base: i64,
}

impl MvValueIds {
    fn decode(s: Option<&str>) -> Result<MvValueIds, BuildError> {
        let Some(s) = s else {
            return Ok(MvValueIds::default());
        };
        let imported: Vec<(i64, Option<i64>, Option<String>)> =
            serde_json::from_str(s).map_err(|e| {
                BuildError::Store(StoreError::Corrupt {
                    what: "mv_value_ids",
                    detail: e.to_string(),
                })
            })?;
        let base = imported.iter().filter_map(|v| v.1).max().unwrap_or(0);
        Ok(MvValueIds {
            imported,
            added: 0,
            base,
        })
    }

    /// The value id and uuid of the state's value for `option_id`.
    fn next(&mut self, state_uuid: &str, option_id: i64) -> (Option<i64>, String) {
        if self.imported.is_empty() {
            return (Some(option_id), mv_value_uuid(state_uuid, option_id));
        }
        if let Some((_, id, uuid)) = self.imported.iter().find(|v| v.0 == option_id) {
            let uuid = uuid
                .clone()
                .unwrap_or_else(|| mv_value_uuid(state_uuid, option_id));
            return (*id, uuid);
        }
        self.added += 1;
        (
            Some(self.base.saturating_add(self.added)),
            mv_value_uuid(state_uuid, option_id),
        )
    }
}

/// Admin-shaped rules (`property`) to document-shaped rules (`property_`, string values),
/// keeping only the fields the document defines.
fn document_rules(rules: &Value) -> Value {
    let Some(list) = rules.as_array() else {
        return Value::Array(vec![]);
    };
    Value::Array(list.iter().map(document_rule).collect())
}

fn document_rule(rule: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "type".into(),
        rule.get("type").cloned().unwrap_or(Value::Null),
    );
    out.insert(
        "rules".into(),
        document_rules(rule.get("rules").unwrap_or(&Value::Null)),
    );
    let conditions = rule
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(document_condition).collect())
        .unwrap_or_default();
    out.insert("conditions".into(), Value::Array(conditions));
    Value::Object(out)
}

fn document_condition(c: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "operator".into(),
        c.get("operator").cloned().unwrap_or(Value::Null),
    );
    let property = c
        .get("property")
        .or_else(|| c.get("property_"))
        .cloned()
        .unwrap_or(Value::Null);
    out.insert("property_".into(), property);
    // Flagsmith stores condition values as strings (its API applies `str()`).
    let value = match c.get("value") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Bool(b)) => Value::String(if *b { "True" } else { "False" }.into()),
        Some(other) => Value::String(other.to_string()),
    };
    out.insert("value".into(), value);
    Value::Object(out)
}

fn corrupt(what: &'static str) -> impl FnOnce(StoreError) -> BuildError {
    move |e| match e {
        StoreError::Corrupt { detail, .. } => {
            BuildError::Store(StoreError::Corrupt { what, detail })
        }
        other => BuildError::Store(other),
    }
}

impl DocumentWriter {
    pub fn new(sink: BudgetedSink) -> Self {
        DocumentWriter {
            sink,
            open_segment: None,
            ids_written: false,
            segments_written: false,
            states_written: false,
            pending: None,
        }
    }

    fn fail(&self, e: impl std::fmt::Display) -> BuildError {
        if self.sink.exceeded() {
            BuildError::TooLarge {
                attempted: self.sink.written(),
                budget: self.sink.budget(),
            }
        } else {
            BuildError::Store(StoreError::Corrupt {
                what: "document output",
                detail: e.to_string(),
            })
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), BuildError> {
        self.sink.write_all(bytes).map_err(|e| self.fail(e))
    }

    fn val<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), BuildError> {
        serde_json::to_writer(&mut self.sink, v).map_err(|e| self.fail(e))
    }

    /// Writes a comma unless this is the first element of its array.
    fn separate(&mut self, first_done: bool) -> Result<(), BuildError> {
        if first_done {
            self.raw(b",")?;
        }
        Ok(())
    }

    /// `{"api_key":…,"name":…,"id":…,"project":{…,"organisation":{…},…,
    /// "server_key_only_feature_ids":[` — the ids follow.
    pub fn header(&mut self, h: &Header) -> Result<(), BuildError> {
        self.raw(b"{\"api_key\":")?;
        self.val(&h.api_key)?;
        self.raw(b",\"name\":")?;
        self.val(&h.name)?;
        self.raw(b",\"id\":")?;
        self.val(&h.id)?;
        self.raw(b",\"project\":{\"id\":")?;
        self.val(&h.project_id)?;
        self.raw(b",\"name\":")?;
        self.val(&h.project_name)?;
        self.raw(b",\"organisation\":")?;
        self.val(&serde_json::json!({
            "id": h.organisation_id,
            "name": h.organisation_name,
            "feature_analytics": h.feature_analytics,
            "stop_serving_flags": h.stop_serving_flags,
            "persist_trait_data": h.persist_trait_data,
        }))?;
        self.raw(b",\"hide_disabled_flags\":")?;
        self.val(&h.project_hide_disabled_flags)?;
        self.raw(b",\"enable_realtime_updates\":")?;
        self.val(&h.enable_realtime_updates)?;
        self.raw(b",\"server_key_only_feature_ids\":[")
    }

    pub fn server_key_only_feature(&mut self, id: i64) -> Result<(), BuildError> {
        self.separate(self.ids_written)?;
        self.ids_written = true;
        self.val(&id)
    }

    pub fn begin_segments(&mut self) -> Result<(), BuildError> {
        self.raw(b"],\"segments\":[")
    }

    /// Opens the segment of row `row_id`, written with id `key` (closing the previous one); its
    /// overrides follow as [`Self::state_row`]s.
    pub fn segment(
        &mut self,
        row_id: i64,
        key: i64,
        name: &str,
        rules: Option<&str>,
    ) -> Result<(), BuildError> {
        self.close_segment()?;
        self.separate(self.segments_written)?;
        self.segments_written = true;
        let rules: Value = match rules {
            Some(r) => serde_json::from_str(r).map_err(|e| {
                BuildError::Store(StoreError::Corrupt {
                    what: "segments.rules",
                    detail: e.to_string(),
                })
            })?,
            None => Value::Array(vec![]),
        };
        self.raw(b"{\"id\":")?;
        self.val(&key)?;
        self.raw(b",\"name\":")?;
        self.val(name)?;
        self.raw(b",\"rules\":")?;
        self.val(&document_rules(&rules))?;
        self.raw(b",\"feature_states\":[")?;
        self.open_segment = Some(row_id);
        self.states_written = false;
        Ok(())
    }

    /// A segment and its overrides as one row: `overrides` is the segment's JSON array of
    /// [`OverrideItem`]s (NULL when it has none), already in document order.
    pub fn segment_with_overrides(&mut self, row: SegmentRow) -> Result<(), BuildError> {
        self.segment(
            row.segment_id,
            row.segment_key,
            &row.segment_name,
            Some(&row.rules),
        )?;
        let Some(overrides) = row.overrides else {
            return Ok(());
        };
        let items: Vec<OverrideItem> = serde_json::from_str(&overrides).map_err(|e| {
            BuildError::Store(StoreError::Corrupt {
                what: "segment overrides",
                detail: e.to_string(),
            })
        })?;
        drop(overrides);
        for item in items {
            let row = item.into_row(row.segment_id).map_err(|e| {
                BuildError::Store(StoreError::Corrupt {
                    what: "mv_options.default_percentage_allocation",
                    detail: e.to_string(),
                })
            })?;
            self.state_row(row)?;
        }
        Ok(())
    }

    /// A row of the sorted UNION stream (the reference shape): a segment, or an override of
    /// the open segment.
    #[cfg(feature = "testing")]
    pub fn segment_row(&mut self, row: Row) -> Result<(), BuildError> {
        let segment_id = row.segment_id.ok_or_else(|| missing("segment_id"))?;
        if row.kind != 0 {
            if self.open_segment == Some(segment_id) {
                return self.state_row(row);
            }
            // An override on a segment of another project: not part of this document.
            return Ok(());
        }
        self.segment(
            segment_id,
            row.segment_key.ok_or_else(|| missing("segment_key"))?,
            row.segment_name.as_deref().unwrap_or(""),
            row.rules.as_deref(),
        )
    }

    fn close_segment(&mut self) -> Result<(), BuildError> {
        self.flush_state()?;
        if self.open_segment.take().is_some() {
            self.raw(b"]}")?;
        }
        Ok(())
    }

    /// Closes `segments` and `project`, opens the environment's `feature_states`.
    pub fn begin_feature_states(&mut self) -> Result<(), BuildError> {
        self.close_segment()?;
        self.raw(b"]},\"feature_states\":[")?;
        self.states_written = false;
        Ok(())
    }

    /// A row of a feature state: the first row of a state starts it; later rows of the same
    /// state add its multivariate values.
    pub fn state_row(&mut self, row: Row) -> Result<(), BuildError> {
        let state_id = row.state_id.ok_or_else(|| missing("state_id"))?;
        if self.pending.as_ref().map(|p| p.id) != Some(state_id) {
            self.flush_state()?;
            let value = decode_value("feature state value", row.value.as_deref())
                .map_err(corrupt("feature state value"))?;
            let allocations = decode_allocations(row.mv_allocations.as_deref().unwrap_or("[]"))
                .map_err(corrupt("mv_allocations"))?;
            self.pending = Some(PendingState {
                id: state_id,
                hash_id: row.state_hash_id,
                value_ids: MvValueIds::decode(row.mv_value_ids.as_deref())?,
                feature_id: row.feature_id.ok_or_else(|| missing("feature_id"))?,
                feature_name: row.feature_name.clone().unwrap_or_default(),
                feature_type: row
                    .feature_type
                    .clone()
                    .unwrap_or_else(|| "STANDARD".into()),
                enabled: row.enabled.unwrap_or(false),
                value,
                uuid: row.state_uuid.clone().unwrap_or_default(),
                priority: row.priority,
                allocations,
                mv: Vec::new(),
            });
        }
        let Some(option_id) = row.option_id else {
            return Ok(());
        };
        let option_value = decode_value("mv option value", row.option_value.as_deref())
            .map_err(corrupt("mv_options.value"))?;
        let p = self.pending.as_mut().expect("pending state set above");
        // An option without an explicit allocation gets its default (values.rs).
        let percentage_allocation = p
            .allocations
            .iter()
            .find(|a| a.multivariate_feature_option == option_id)
            .map(|a| a.percentage_allocation)
            .unwrap_or(row.option_default.unwrap_or(0.0));
        let (id, mv_fs_value_uuid) = p.value_ids.next(&p.uuid, option_id);
        p.mv.push(MvValueOut {
            id,
            mv_fs_value_uuid,
            percentage_allocation,
            multivariate_feature_option: MvOptionOut {
                id: option_id,
                value: option_value,
                key: row.option_key,
            },
        });
        Ok(())
    }

    fn flush_state(&mut self) -> Result<(), BuildError> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        // In the order the engine walks them (value id, then uuid), which survives export →
        // import, unlike the options' row ids.
        p.mv.sort_by(|a, b| {
            (a.id.is_none(), a.id, &a.mv_fs_value_uuid).cmp(&(
                b.id.is_none(),
                b.id,
                &b.mv_fs_value_uuid,
            ))
        });
        self.separate(self.states_written)?;
        self.states_written = true;
        let out = FeatureStateOut {
            feature: FeatureOut {
                id: p.feature_id,
                name: &p.feature_name,
                kind: &p.feature_type,
            },
            enabled: p.enabled,
            django_id: django_id(p.id, p.hash_id),
            featurestate_uuid: &p.uuid,
            feature_state_value: &p.value,
            feature_segment: p.priority.map(|priority| FeatureSegmentOut { priority }),
            multivariate_feature_state_values: &p.mv,
        };
        self.val(&out)
    }

    /// Closes `feature_states` and writes the environment's settings. `identity_overrides`
    /// comes last and empty (see [`super::IDENTITY_OVERRIDES_TAIL`]).
    pub fn finish(mut self, h: &Header) -> Result<BudgetedSink, BuildError> {
        self.flush_state()?;
        self.raw(b"],\"allow_client_traits\":")?;
        self.val(&h.allow_client_traits)?;
        self.raw(b",\"hide_sensitive_data\":")?;
        self.val(&h.hide_sensitive_data)?;
        self.raw(b",\"hide_disabled_flags\":")?;
        self.val(&h.hide_disabled_flags)?;
        self.raw(b",\"use_identity_composite_key_for_hashing\":")?;
        self.val(&h.use_identity_composite_key_for_hashing)?;
        self.raw(b",\"use_identity_overrides_in_local_eval\":")?;
        self.val(&h.use_identity_overrides_in_local_eval)?;
        self.raw(b",\"updated_at\":")?;
        self.val(&iso8601(h.updated_at))?;
        self.raw(b",")?;
        self.raw(super::IDENTITY_OVERRIDES_TAIL)?;
        Ok(self.sink)
    }
}
