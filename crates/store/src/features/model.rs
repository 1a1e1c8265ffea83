//! The feature model: what the API returns and accepts for a feature, how a feature row is
//! decoded, and the checks on its free-form fields (description).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MvOption;
use super::NewMvOption;
use crate::organisations::double_option;
use crate::{Result, StoreError};

/// Tags on one feature.
pub const MAX_TAGS: usize = 100;
/// Characters in a feature's description.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;

/// `STANDARD` or `MULTIVARIATE`, as Flagsmith names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeatureType {
    Standard,
    Multivariate,
}

impl FeatureType {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureType::Standard => "STANDARD",
            FeatureType::Multivariate => "MULTIVARIATE",
        }
    }

    fn from_stored(s: &str) -> Result<FeatureType> {
        match s {
            "STANDARD" => Ok(FeatureType::Standard),
            "MULTIVARIATE" => Ok(FeatureType::Multivariate),
            other => Err(StoreError::Corrupt {
                what: "features.type",
                detail: format!("unknown feature type {other:?}"),
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feature {
    pub id: i64,
    /// Stable across renames; Flagsmith clients address the object by it (`get-by-uuid`).
    pub uuid: String,
    pub project: i64,
    /// The name SDKs look flags up by; unique in the project (ignoring case).
    pub name: String,
    #[serde(rename = "type")]
    pub feature_type: FeatureType,
    /// The value of the default state created in each environment: string, number, boolean or null.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub initial_value: Value,
    pub default_enabled: bool,
    pub description: Option<String>,
    /// Served only to server-side keys.
    pub is_server_key_only: bool,
    /// Ids of the project's tags the feature carries (`/api/v1/projects/{id}/tags/`), sorted.
    pub tags: Vec<i64>,
    /// Archived features are hidden from the dashboard's default list; they are still served.
    pub is_archived: bool,
    pub multivariate_options: Vec<MvOption>,
    /// The people responsible for the feature (Flagsmith's `owners`).
    pub owners: Vec<super::owners::FeatureOwner>,
    /// The groups responsible for the feature (Flagsmith's `group_owners`).
    pub group_owners: Vec<super::owners::GroupOwner>,
    #[serde(
        rename = "created_date",
        serialize_with = "crate::clock::iso::serialize"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct FeatureRow {
    pub(super) id: i64,
    uuid: String,
    project_id: i64,
    name: String,
    #[sqlx(rename = "type")]
    kind: String,
    initial_value: Option<String>,
    default_enabled: bool,
    description: Option<String>,
    is_server_key_only: bool,
    is_archived: bool,
    created_at: i64,
}

impl FeatureRow {
    pub(super) fn into_feature(
        self,
        tags: Vec<i64>,
        multivariate_options: Vec<MvOption>,
    ) -> Result<Feature> {
        Ok(Feature {
            id: self.id,
            uuid: self.uuid,
            project: self.project_id,
            name: self.name,
            feature_type: FeatureType::from_stored(&self.kind)?,
            initial_value: crate::values::decode_value(
                "features.initial_value",
                self.initial_value.as_deref(),
            )?,
            default_enabled: self.default_enabled,
            description: self.description,
            is_server_key_only: self.is_server_key_only,
            tags,
            is_archived: self.is_archived,
            multivariate_options,
            owners: Vec::new(),
            group_owners: Vec::new(),
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewFeature {
    pub name: String,
    /// Flagsmith clients repeat the project in the body; it must match the path.
    #[serde(default)]
    pub project: Option<i64>,
    /// Defaults to `MULTIVARIATE` when options are given, else `STANDARD`.
    #[serde(default, rename = "type")]
    pub feature_type: Option<FeatureType>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub initial_value: Value,
    #[serde(default)]
    pub default_enabled: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_server_key_only: bool,
    /// Tag ids of the project; `null` (what Flagsmith's Terraform client sends for none) is
    /// no tags.
    #[serde(default)]
    pub tags: Option<Vec<i64>>,
    /// Options created with the feature, in the same change.
    #[serde(default)]
    pub multivariate_options: Vec<NewMvOption>,
    /// Users to own the feature (ids); when absent or empty, the person creating it (not an
    /// API key), as in Flagsmith. Set by the API after the feature is created.
    #[serde(default)]
    pub owners: Option<Vec<i64>>,
    /// Groups of the organisation to own the feature (ids).
    #[serde(default)]
    pub group_owners: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeaturePatch {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub feature_type: Option<FeatureType>,
    /// Used for environments created from now on; existing states keep their values.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub initial_value: Option<Value>,
    pub default_enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    pub is_server_key_only: Option<bool>,
    /// Replaces the feature's tags (ids); `null` removes them all.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<i64>>))]
    pub tags: Option<Option<Vec<i64>>>,
    /// Archive (`true`) or restore (`false`) the feature; it is served either way.
    pub is_archived: Option<bool>,
    /// Flagsmith clients repeat the project in the body; it must match the path.
    pub project: Option<i64>,
    /// Read-only fields of Flagsmith's feature serializer that its clients send back with a
    /// `PUT` of what they read (the Terraform provider's `id`, `uuid`): ignored, as Flagsmith
    /// ignores them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub created_date: Option<serde::de::IgnoredAny>,
    /// Owners are changed with `add-owners`/`remove-owners` (and the group variants).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub owners: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub group_owners: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub num_segment_overrides: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub num_identity_overrides: Option<serde::de::IgnoredAny>,
}

/// Deserializes a JSON value that may be absent (`None`: no change) or present, null included
/// (`Some(Value::Null)`: set to null).
pub(crate) fn present<'de, D>(d: D) -> std::result::Result<Option<Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Value::deserialize(d).map(Some)
}

pub(super) const COLUMNS: &str =
    "id, uuid, project_id, name, type, initial_value, default_enabled, description, \
    is_server_key_only, is_archived, created_at";

pub(super) fn validate_description(d: Option<&str>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(StoreError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        Some(d) => Ok(Some(d.to_string())),
        None => Ok(None),
    }
}

/// Refuses more tags on one feature than [`MAX_TAGS`].
pub(super) fn check_tag_count(tags: &[i64]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(StoreError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(())
}
