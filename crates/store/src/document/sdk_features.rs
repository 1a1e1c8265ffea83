//! The SDK's feature objects: what Flagsmith's `SDKFeatureSerializer` gives of a feature in
//! `/flags/` and `/identities/` answers beyond the environment document's `FeatureModel`
//! (id, name, type), and what the legacy `GET /api/v1/flags/{id}/multivariate-options/` lists
//! (the options' values; archived features have no control value there). A build reads them in the same snapshot as the document and publishes
//! them beside it (`environment_documents.sdk_features`), not in it: the document served at
//! `/environment-document/` stays exactly Flagsmith's shape.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BuildError;
use crate::clock::iso8601;
use crate::{sql, StoreError, Tx};

/// One feature's SDK fields, as Flagsmith's `FeatureSerializer` prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkFeature {
    /// ISO-8601, as Django REST framework prints the model's `created_date`.
    pub created_date: String,
    pub description: Option<String>,
    /// Flagsmith keeps the initial value in a text column, so SDKs get it as a string (`"42"`,
    /// `"true"`), or null.
    pub initial_value: Option<String>,
    pub default_enabled: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_archived: bool,
    /// The values of the feature's multivariate options, by option id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Value>,
}

/// Feature id -> its SDK fields, as published (JSON with the ids as keys).
pub type SdkFeatures = BTreeMap<i64, SdkFeature>;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    created_at: i64,
    description: Option<String>,
    initial_value: Option<String>,
    default_enabled: bool,
    is_archived: bool,
    is_server_key_only: bool,
}

/// What a build reads of its project's features in one pass: the SDK fields published beside
/// the document, and the ids of the server-key-only features the document lists.
pub(super) struct ProjectFeatures {
    /// The [`SdkFeatures`] as JSON.
    pub sdk: String,
    /// In id order.
    pub server_key_only: Vec<i64>,
}

const QUERY: &str = "SELECT id, created_at, description, initial_value, default_enabled, \
     is_archived, is_server_key_only FROM features WHERE project_id = $1 ORDER BY id";

const OPTIONS: &str = "SELECT o.feature_id, o.value FROM mv_options o \
     JOIN features f ON f.id = o.feature_id WHERE f.project_id = $1 ORDER BY o.feature_id, o.id";

/// The SDK fields of every feature of a project, as the JSON stored beside its documents.
pub(super) async fn read(tx: &mut Tx, project_id: i64) -> Result<ProjectFeatures, BuildError> {
    let mut out = SdkFeatures::new();
    let mut server_key_only = Vec::new();
    sql!(&mut *tx, |c| {
        let mut rows = sqlx::query_as::<_, Row>(QUERY).bind(project_id).fetch(c);
        while let Some(row) = rows.try_next().await? {
            if row.is_server_key_only {
                server_key_only.push(row.id);
            }
            let initial_value = initial_value_text(row.initial_value.as_deref())?;
            out.insert(
                row.id,
                SdkFeature {
                    created_date: iso8601(row.created_at),
                    description: row.description,
                    initial_value,
                    default_enabled: row.default_enabled,
                    is_archived: row.is_archived,
                    options: Vec::new(),
                },
            );
        }
    });
    sql!(&mut *tx, |c| {
        let mut rows = sqlx::query_as::<_, (i64, Option<String>)>(OPTIONS)
            .bind(project_id)
            .fetch(c);
        while let Some((feature_id, value)) = rows.try_next().await? {
            let value = crate::values::decode_value("mv_options.value", value.as_deref())?;
            if let Some(f) = out.get_mut(&feature_id) {
                f.options.push(value);
            }
        }
    });
    let sdk = serde_json::to_string(&out).map_err(|e| {
        BuildError::Store(StoreError::Corrupt {
            what: "sdk features",
            detail: e.to_string(),
        })
    })?;
    Ok(ProjectFeatures {
        sdk,
        server_key_only,
    })
}

/// Flagstone stores a feature's initial value as JSON (string, number, boolean); Flagsmith's
/// column is text, so a number is its digits and a boolean `"true"`/`"false"`.
fn initial_value_text(stored: Option<&str>) -> Result<Option<String>, BuildError> {
    let value = crate::values::decode_value("features.initial_value", stored)?;
    Ok(match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// Parses published SDK fields; `None` (a document published before they were) is empty.
pub fn parse(stored: Option<&str>) -> Result<SdkFeatures, serde_json::Error> {
    match stored {
        None => Ok(SdkFeatures::new()),
        Some(s) => serde_json::from_str(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_values_are_text_as_in_flagsmith() {
        assert_eq!(initial_value_text(None).unwrap(), None);
        assert_eq!(
            initial_value_text(Some("\"on\"")).unwrap().as_deref(),
            Some("on")
        );
        assert_eq!(
            initial_value_text(Some("42")).unwrap().as_deref(),
            Some("42")
        );
        assert_eq!(
            initial_value_text(Some("true")).unwrap().as_deref(),
            Some("true")
        );
        assert!(initial_value_text(Some("{")).is_err());
    }

    #[test]
    fn published_fields_round_trip_with_integer_keys() {
        let mut m = SdkFeatures::new();
        m.insert(
            7,
            SdkFeature {
                created_date: "2026-11-30T09:16:06.123000Z".into(),
                description: Some("d".into()),
                initial_value: Some("1".into()),
                default_enabled: true,
                is_archived: false,
                options: vec![Value::from("a"), Value::from(2)],
            },
        );
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.starts_with("{\"7\":{"));
        assert_eq!(parse(Some(&text)).unwrap(), m);
        assert!(parse(None).unwrap().is_empty());
        assert!(parse(Some("[")).is_err());
    }
}
