//! A feature's configuration in one environment — what a version records and a restore
//! applies — read from the live rows, and its stored form: compact JSON arrays (no field
//! names, overrides in priority order), deflated. A version holds only this, never the
//! environment document.

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::values::{decode_allocations, decode_value, MvAllocation};
use crate::{sql, Result, StoreError, Tx};

/// A feature's configuration in an environment: its default state and its segment overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureConfig {
    pub enabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub feature_state_value: Value,
    pub multivariate_feature_state_values: Vec<MvAllocation>,
    /// In priority order: the first wins when several match.
    pub segment_overrides: Vec<OverrideConfig>,
}

/// One segment override of the feature, as part of a [`FeatureConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverrideConfig {
    pub segment: i64,
    /// Its position among the feature's overrides (0 wins first).
    pub priority: i64,
    pub enabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub feature_state_value: Value,
    pub multivariate_feature_state_values: Vec<MvAllocation>,
}

/// The stored form: `[enabled, value, [[option, percent]…], [[segment, enabled, value,
/// [[option, percent]…]]…]]`. Field names would cost more than the data for a feature with
/// dozens of overrides; priorities are the order.
type StoredAllocs = Vec<(i64, f64)>;
#[derive(Serialize, Deserialize)]
struct Stored(
    bool,
    Value,
    StoredAllocs,
    Vec<(i64, bool, Value, StoredAllocs)>,
);

fn pack(a: &[MvAllocation]) -> StoredAllocs {
    a.iter()
        .map(|a| (a.multivariate_feature_option, a.percentage_allocation))
        .collect()
}

fn unpack(a: StoredAllocs) -> Vec<MvAllocation> {
    a.into_iter()
        .map(|(o, p)| MvAllocation {
            multivariate_feature_option: o,
            percentage_allocation: p,
        })
        .collect()
}

impl FeatureConfig {
    /// The bytes a version stores.
    pub fn encode(&self) -> Vec<u8> {
        let stored = Stored(
            self.enabled,
            self.feature_state_value.clone(),
            pack(&self.multivariate_feature_state_values),
            self.segment_overrides
                .iter()
                .map(|o| {
                    (
                        o.segment,
                        o.enabled,
                        o.feature_state_value.clone(),
                        pack(&o.multivariate_feature_state_values),
                    )
                })
                .collect(),
        );
        let json = serde_json::to_vec(&stored).unwrap_or_default();
        let mut z = DeflateEncoder::new(Vec::with_capacity(json.len() / 2), Compression::new(6));
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&json);
        z.finish().unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<FeatureConfig> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "feature_versions.config",
            detail,
        };
        let mut json = Vec::new();
        DeflateDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(e.to_string()))?;
        let Stored(enabled, value, mv, overrides) =
            serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
        Ok(FeatureConfig {
            enabled,
            feature_state_value: value,
            multivariate_feature_state_values: unpack(mv),
            segment_overrides: overrides
                .into_iter()
                .enumerate()
                .map(|(i, (segment, enabled, value, mv))| OverrideConfig {
                    segment,
                    priority: i as i64,
                    enabled,
                    feature_state_value: value,
                    multivariate_feature_state_values: unpack(mv),
                })
                .collect(),
        })
    }
}

/// The feature's configuration in the environment as the rows hold it now; `None` when the
/// feature has no state there (deleted, or of another project).
pub async fn current(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
) -> Result<Option<FeatureConfig>> {
    let state: Option<(bool, Option<String>, String)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT enabled, value, mv_allocations FROM feature_states \
             WHERE environment_id = $1 AND feature_id = $2",
        )
        .bind(environment_id)
        .bind(feature_id)
        .fetch_optional(c)
        .await?
    });
    let Some((enabled, value, mv)) = state else {
        return Ok(None);
    };
    let rows: Vec<(i64, bool, Option<String>, String)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT segment_id, enabled, value, mv_allocations FROM segment_overrides \
             WHERE environment_id = $1 AND feature_id = $2 ORDER BY priority, id",
        )
        .bind(environment_id)
        .bind(feature_id)
        .fetch_all(c)
        .await?
    });
    let mut segment_overrides = Vec::with_capacity(rows.len());
    for (i, (segment, enabled, value, mv)) in rows.into_iter().enumerate() {
        segment_overrides.push(OverrideConfig {
            segment,
            priority: i as i64,
            enabled,
            feature_state_value: decode_value("segment_overrides.value", value.as_deref())?,
            multivariate_feature_state_values: decode_allocations(&mv)?,
        });
    }
    Ok(Some(FeatureConfig {
        enabled,
        feature_state_value: decode_value("feature_states.value", value.as_deref())?,
        multivariate_feature_state_values: decode_allocations(&mv)?,
        segment_overrides,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stored_form_round_trips_and_numbers_priorities_by_order() {
        let a = |o, p| MvAllocation {
            multivariate_feature_option: o,
            percentage_allocation: p,
        };
        let c = FeatureConfig {
            enabled: true,
            feature_state_value: json!("blue"),
            multivariate_feature_state_values: vec![a(3, 33.5)],
            segment_overrides: vec![
                OverrideConfig {
                    segment: 9,
                    priority: 0,
                    enabled: false,
                    feature_state_value: json!(12),
                    multivariate_feature_state_values: vec![],
                },
                OverrideConfig {
                    segment: 4,
                    priority: 1,
                    enabled: true,
                    feature_state_value: Value::Null,
                    multivariate_feature_state_values: vec![a(3, 100.0)],
                },
            ],
        };
        assert_eq!(FeatureConfig::decode(&c.encode()).unwrap(), c);
        assert!(FeatureConfig::decode(b"not deflate").is_err());
    }
}
