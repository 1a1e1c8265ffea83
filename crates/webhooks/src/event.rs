//! What receivers get: the event types, the `{"data": …, "event_type": …}` envelope with its
//! keys sorted (Flagsmith serialises with `sort_keys=True`, so bodies look the same), and the
//! Flagsmith shape of a feature state in `FLAG_UPDATED` / `FLAG_DELETED`
//! (`Webhook.generate_webhook_feature_state_data` in Flagsmith's `environments/models.py`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An event a webhook can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// A flag's state in an environment changed (environment default, segment override, or a
    /// segment whose rules decide an override). Flagsmith's.
    FlagUpdated,
    /// A flag's state was deleted (feature, segment override, or the segment of an override).
    /// Flagsmith's.
    FlagDeleted,
    /// An audit entry was written (organisation webhooks). Flagsmith's.
    AuditLogCreated,
    /// Flagstone's opt-in event: an environment document was published (revision range and
    /// what changed for SDKs).
    EnvironmentPublished,
    /// Flagstone's opt-in event: the publish queue became degraded or recovered.
    QueueHealth,
    /// Flagstone's opt-in event: a change request was opened (Flagsmith e-mails assignees
    /// instead and has no webhook for it).
    ChangeRequestCreated,
    /// Flagstone's opt-in event: a change request was approved.
    ChangeRequestApproved,
    /// Flagstone's opt-in event: a change request was committed (applied or scheduled).
    ChangeRequestCommitted,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::FlagUpdated,
        EventType::FlagDeleted,
        EventType::AuditLogCreated,
        EventType::EnvironmentPublished,
        EventType::QueueHealth,
        EventType::ChangeRequestCreated,
        EventType::ChangeRequestApproved,
        EventType::ChangeRequestCommitted,
    ];

    /// Events a webhook receives only when it lists them in `events` (Flagstone's own).
    pub const OPT_IN: &'static [EventType] = &[
        EventType::EnvironmentPublished,
        EventType::QueueHealth,
        EventType::ChangeRequestCreated,
        EventType::ChangeRequestApproved,
        EventType::ChangeRequestCommitted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::FlagUpdated => "FLAG_UPDATED",
            EventType::FlagDeleted => "FLAG_DELETED",
            EventType::AuditLogCreated => "AUDIT_LOG_CREATED",
            EventType::EnvironmentPublished => "ENVIRONMENT_PUBLISHED",
            EventType::QueueHealth => "QUEUE_HEALTH",
            EventType::ChangeRequestCreated => "CHANGE_REQUEST_CREATED",
            EventType::ChangeRequestApproved => "CHANGE_REQUEST_APPROVED",
            EventType::ChangeRequestCommitted => "CHANGE_REQUEST_COMMITTED",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|e| e.as_str() == s)
    }

    pub fn is_opt_in(self) -> bool {
        EventType::OPT_IN.contains(&self)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exact body of an event: `{"data": data, "event_type": …}` with every object's keys
/// sorted, compact. Stored once at enqueue time and sent byte for byte on every attempt.
pub fn body(event_type: EventType, data: &Value) -> String {
    let mut envelope = Map::new();
    envelope.insert("data".into(), sorted(data));
    envelope.insert(
        "event_type".into(),
        Value::String(event_type.as_str().into()),
    );
    Value::Object(envelope).to_string()
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Flagsmith's webhook time format (`%Y-%m-%dT%H:%M:%S.%fZ`), from Unix milliseconds.
pub fn timestamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// `{id, name}` of a project or environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureData {
    pub id: i64,
    pub created_date: String,
    pub default_enabled: bool,
    pub description: Option<String>,
    pub initial_value: Value,
    pub name: String,
    pub project: Named,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentData {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSegmentData {
    pub segment: SegmentData,
    pub priority: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptionData {
    pub id: i64,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MvValueData {
    /// Flagstone keeps allocations on the state, not as rows: this is the option's id.
    pub id: i64,
    pub multivariate_feature_option: OptionData,
    pub percentage_allocation: f64,
}

/// A feature state as Flagsmith's webhooks send it in `new_state` / `previous_state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStateData {
    pub feature: FeatureData,
    pub environment: Named,
    pub identity: Option<i64>,
    pub identity_identifier: Option<String>,
    pub feature_segment: Option<FeatureSegmentData>,
    pub enabled: bool,
    pub feature_state_value: Value,
    pub multivariate_feature_state_values: Vec<MvValueData>,
}

/// The `data` of `FLAG_UPDATED` / `FLAG_DELETED`: `previous_state` is left out when there is
/// none (a new flag), `new_state` is null for a deletion — as Flagsmith sends them.
pub fn flag_data(
    changed_by: &str,
    timestamp_ms: i64,
    new_state: Option<&FeatureStateData>,
    previous_state: Option<&FeatureStateData>,
) -> Value {
    let mut m = Map::new();
    m.insert("changed_by".into(), Value::String(changed_by.into()));
    m.insert(
        "new_state".into(),
        serde_json::to_value(new_state).unwrap_or(Value::Null),
    );
    if let Some(p) = previous_state {
        m.insert(
            "previous_state".into(),
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
    }
    m.insert("timestamp".into(), Value::String(timestamp(timestamp_ms)));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_has_sorted_keys_and_the_event_type() {
        let b = body(
            EventType::FlagUpdated,
            &json!({"timestamp": "t", "changed_by": "ada", "new_state": {"z": 1, "a": [{"y": 1, "b": 2}]}}),
        );
        assert_eq!(
            b,
            r#"{"data":{"changed_by":"ada","new_state":{"a":[{"b":2,"y":1}],"z":1},"timestamp":"t"},"event_type":"FLAG_UPDATED"}"#
        );
    }

    #[test]
    fn timestamps_use_flagsmiths_format() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123000Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn flag_data_leaves_out_a_missing_previous_state() {
        let d = flag_data("ada", 0, None, None);
        assert!(d.get("previous_state").is_none());
        assert_eq!(d["new_state"], Value::Null);
        assert_eq!(
            EventType::parse("FLAG_DELETED"),
            Some(EventType::FlagDeleted)
        );
        assert_eq!(EventType::parse("flag_deleted"), None);
        assert!(EventType::EnvironmentPublished.is_opt_in());
    }
}
