//! Multivariate options of a feature: a value and the percentage of identities that get it by
//! default. The default allocations of a feature's options sum to at most 100, and so does the
//! effective allocation of every state and override of the feature (listed allocations plus the
//! defaults of unlisted options, as `values` defines them) — checked whenever a default changes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::allocations::{check_states_fit, strip_option, EPSILON};
pub use super::option_body::{MvOptionBody, TypedFields};
use super::{get as get_feature, lock_feature, FeatureType};
use crate::error::unique_as_conflict;
use crate::values::{decode_value, encode_value, validate_flag_value};
use crate::{
    list_window, projects, sql, AuditEntry, Change, Limits, ListOf, Page, PageRequest, Result,
    StoreError, Tx,
};

/// Characters in an option's key.
pub const MAX_KEY_CHARS: usize = 200;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MvOption {
    pub id: i64,
    pub feature: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Value,
    /// Percentage of identities given this value where a state does not say otherwise.
    pub default_percentage_allocation: f64,
    /// An optional name for the option, unique within its feature.
    pub key: Option<String>,
    pub uuid: String,
    /// The value as Flagsmith's fields (`type`, `string_value`, …).
    #[serde(flatten)]
    pub typed: TypedFields,
}

#[derive(sqlx::FromRow)]
struct OptionRow {
    id: i64,
    feature_id: i64,
    value: Option<String>,
    default_percentage_allocation: f64,
    key: Option<String>,
    uuid: String,
}

impl TryFrom<OptionRow> for MvOption {
    type Error = StoreError;
    fn try_from(r: OptionRow) -> Result<MvOption> {
        let value = decode_value("mv_options.value", r.value.as_deref())?;
        Ok(MvOption {
            id: r.id,
            feature: r.feature_id,
            value: value.clone(),
            typed: TypedFields::of(&value),
            default_percentage_allocation: r.default_percentage_allocation,
            key: r.key,
            uuid: r.uuid,
        })
    }
}

/// A new option, read from an [`MvOptionBody`] (Flagstone's `value` or Flagsmith's typed
/// fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "MvOptionBody")]
pub struct NewMvOption {
    pub value: Value,
    pub default_percentage_allocation: f64,
    pub key: Option<String>,
    /// Flagsmith clients repeat the feature in the body; it must match the path.
    pub feature: Option<i64>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for NewMvOption {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <MvOptionBody as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for NewMvOption {
    fn name() -> std::borrow::Cow<'static, str> {
        "MvOptionBody".into()
    }
}

/// A change to an option (absent fields keep their value), read from an [`MvOptionBody`]; a
/// `PUT` sends every field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "MvOptionBody")]
pub struct MvOptionPatch {
    pub value: Option<Value>,
    pub default_percentage_allocation: Option<f64>,
    pub key: Option<Option<String>>,
    /// Only used by `PUT`, which may repeat the feature (it must match the path).
    pub feature: Option<i64>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for MvOptionPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <MvOptionBody as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for MvOptionPatch {
    fn name() -> std::borrow::Cow<'static, str> {
        "MvOptionBody".into()
    }
}

const COLUMNS: &str = "id, feature_id, value, default_percentage_allocation, key, uuid";

fn validate_percentage(p: f64) -> Result<()> {
    if (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "default_percentage_allocation",
            "must be between 0 and 100",
        ))
    }
}

fn validate_key(key: Option<&str>) -> Result<Option<String>> {
    match key.map(str::trim) {
        None => Ok(None),
        Some(k) if k.is_empty() || k.chars().count() > MAX_KEY_CHARS => Err(StoreError::invalid(
            "key",
            format!("must be 1 to {MAX_KEY_CHARS} characters"),
        )),
        Some(k) => {
            crate::text::refuse_deceptive("key", k)?;
            Ok(Some(k.to_string()))
        }
    }
}

fn check_total(total: f64) -> Result<()> {
    if total > 100.0 + EPSILON {
        Err(StoreError::invalid(
            "default_percentage_allocation",
            format!("the feature's options would allocate {total}% by default, more than 100"),
        ))
    } else {
        Ok(())
    }
}

/// Validates options given inline with a new feature, as a set.
pub(crate) fn validate_new_set(opts: &[NewMvOption], limits: &Limits) -> Result<()> {
    let mut keys = Vec::new();
    for o in opts {
        validate_flag_value("multivariate_options.value", &o.value, limits)?;
        validate_percentage(o.default_percentage_allocation)?;
        if let Some(k) = validate_key(o.key.as_deref())? {
            if keys.contains(&k) {
                return Err(StoreError::conflict(
                    "key",
                    format!("key {k:?} is used twice"),
                ));
            }
            keys.push(k);
        }
    }
    check_total(opts.iter().map(|o| o.default_percentage_allocation).sum())
}

/// Inserts an already validated option.
pub(crate) async fn insert(tx: &mut Tx, feature_id: i64, new: &NewMvOption) -> Result<MvOption> {
    let key = validate_key(new.key.as_deref())?;
    let row: OptionRow = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "INSERT INTO mv_options (feature_id, value, default_percentage_allocation, key, uuid) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(feature_id)
        .bind(encode_value(&new.value))
        .bind(new.default_percentage_allocation)
        .bind(&key)
        .bind(uuid::Uuid::new_v4().to_string())
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict(
            "key",
            "an option with this key exists in the feature",
        ))?
    });
    row.try_into()
}

/// Every option of a feature, by id.
pub(crate) async fn all_of(tx: &mut Tx, feature_id: i64) -> Result<Vec<MvOption>> {
    let rows: Vec<OptionRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM mv_options WHERE feature_id = $1 ORDER BY id"
        ))
        .bind(feature_id)
        .fetch_all(c)
        .await?
    });
    rows.into_iter().map(MvOption::try_from).collect()
}

/// Options of the project's features with ids in `first..=last`, grouped by feature.
pub(crate) async fn in_range(
    tx: &mut Tx,
    project_id: i64,
    first: i64,
    last: i64,
) -> Result<HashMap<i64, Vec<MvOption>>> {
    let rows: Vec<OptionRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM mv_options WHERE feature_id >= $2 AND feature_id <= $3 \
             AND feature_id IN (SELECT id FROM features WHERE project_id = $1) \
             ORDER BY feature_id, id"
        ))
        .bind(project_id)
        .bind(first)
        .bind(last)
        .fetch_all(c)
        .await?
    });
    let mut out: HashMap<i64, Vec<MvOption>> = HashMap::new();
    for r in rows {
        let o = MvOption::try_from(r)?;
        out.entry(o.feature).or_default().push(o);
    }
    Ok(out)
}

fn defaults_of(opts: &[MvOption]) -> HashMap<i64, f64> {
    opts.iter()
        .map(|o| (o.id, o.default_percentage_allocation))
        .collect()
}

fn audit(
    ch: &mut Change,
    project_id: i64,
    action: &'static str,
    before: Option<&MvOption>,
    after: Option<&MvOption>,
) {
    let o = after.or(before).expect("an option before or after");
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action,
        resource_type: "mv_option",
        resource_id: o.id.to_string(),
        log: format!(
            "Multivariate option {} of feature {} {action}",
            o.id, o.feature
        ),
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: after.and_then(|a| serde_json::to_value(a).ok()),
    });
}

/// Adds an option to a feature; a `STANDARD` feature becomes `MULTIVARIATE`.
pub async fn create(
    ch: &mut Change,
    project_id: i64,
    feature_id: i64,
    new: &NewMvOption,
) -> Result<MvOption> {
    let feature = get_feature(ch.tx(), project_id, feature_id).await?;
    if new.feature.is_some_and(|f| f != feature_id) {
        return Err(StoreError::invalid(
            "feature",
            "does not match the feature in the path",
        ));
    }
    let limits = projects::limits(ch.tx(), project_id).await?;
    validate_flag_value("value", &new.value, &limits)?;
    validate_percentage(new.default_percentage_allocation)?;
    validate_key(new.key.as_deref())?;
    lock_feature(ch.tx(), feature_id).await?;
    let existing = all_of(ch.tx(), feature_id).await?;
    check_total(
        existing
            .iter()
            .map(|o| o.default_percentage_allocation)
            .sum::<f64>()
            + new.default_percentage_allocation,
    )?;
    let option = insert(ch.tx(), feature_id, new).await?;
    let mut defaults = defaults_of(&existing);
    defaults.insert(option.id, option.default_percentage_allocation);
    check_states_fit(ch.tx(), feature_id, &defaults).await?;
    if feature.feature_type == FeatureType::Standard {
        sql!(ch.tx(), |c| {
            sqlx::query("UPDATE features SET type = $2 WHERE id = $1")
                .bind(feature_id)
                .bind(FeatureType::Multivariate.as_str())
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    ch.touch_project(project_id);
    audit(ch, project_id, "created", None, Some(&option));
    Ok(option)
}

pub async fn get(tx: &mut Tx, project_id: i64, feature_id: i64, id: i64) -> Result<MvOption> {
    get_feature(tx, project_id, feature_id).await?;
    let row: Option<OptionRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM mv_options WHERE id = $1 AND feature_id = $2"
        ))
        .bind(id)
        .bind(feature_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("multivariate option"))?
        .try_into()
}

pub async fn list(
    tx: &mut Tx,
    project_id: i64,
    feature_id: i64,
    page: PageRequest,
) -> Result<Page<MvOption>> {
    get_feature(tx, project_id, feature_id).await?;
    let of = ListOf::new("mv_options", COLUMNS, "feature_id", "id");
    list_window::<OptionRow>(tx, of, feature_id, page)
        .await?
        .try_map(MvOption::try_from)
}

pub async fn update(
    ch: &mut Change,
    project_id: i64,
    feature_id: i64,
    id: i64,
    patch: &MvOptionPatch,
) -> Result<MvOption> {
    let before = get(ch.tx(), project_id, feature_id, id).await?;
    if patch.feature.is_some_and(|f| f != feature_id) {
        return Err(StoreError::invalid(
            "feature",
            "does not match the feature in the path",
        ));
    }
    let limits = projects::limits(ch.tx(), project_id).await?;
    let value = patch.value.clone().unwrap_or_else(|| before.value.clone());
    validate_flag_value("value", &value, &limits)?;
    let pct = patch
        .default_percentage_allocation
        .unwrap_or(before.default_percentage_allocation);
    validate_percentage(pct)?;
    let key = match &patch.key {
        Some(k) => validate_key(k.as_deref())?,
        None => before.key.clone(),
    };
    lock_feature(ch.tx(), feature_id).await?;
    let mut defaults = defaults_of(&all_of(ch.tx(), feature_id).await?);
    defaults.insert(id, pct);
    check_total(defaults.values().sum())?;
    check_states_fit(ch.tx(), feature_id, &defaults).await?;
    let row: OptionRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE mv_options SET value = $2, default_percentage_allocation = $3, key = $4 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(encode_value(&value))
        .bind(pct)
        .bind(&key)
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict(
            "key",
            "an option with this key exists in the feature",
        ))?
    });
    let after = MvOption::try_from(row)?;
    ch.touch_project(project_id);
    audit(ch, project_id, "updated", Some(&before), Some(&after));
    Ok(after)
}

/// Deletes an option and drops it from the allocations of the feature's states and overrides,
/// so no stored allocation names an option that no longer exists.
pub async fn delete(
    ch: &mut Change,
    project_id: i64,
    feature_id: i64,
    id: i64,
) -> Result<MvOption> {
    let before = get(ch.tx(), project_id, feature_id, id).await?;
    lock_feature(ch.tx(), feature_id).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM mv_options WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    for table in ["feature_states", "segment_overrides"] {
        strip_option(ch.tx(), table, feature_id, id).await?;
    }
    ch.touch_project(project_id);
    audit(ch, project_id, "deleted", Some(&before), None);
    Ok(before)
}
