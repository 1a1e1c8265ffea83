//! A document's identity overrides, one at a time: checking one ([`check`]), remembering which
//! identifiers were seen ([`Seen`]) and writing a batch of checked ones ([`write_batch`], a
//! few multi-row statements). The importer never needs them all at once — a million of them
//! arrive in batches from [`super::stream`] — so nothing here holds more than one batch, except
//! [`Seen`]'s 16 bytes per identifier.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use flagstone_engine::{FeatureState, IdentityOverride};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::plan::at;
use crate::identities::validate_identifier;
use crate::values::{encode_value, validate_flag_value};
use crate::{sql, Limits, Result, StoreError, Tx};

pub(crate) struct PlanIdentity {
    pub identifier: String,
    /// (feature index, enabled, value, uuid).
    pub overrides: Vec<(usize, bool, Value, Option<String>)>,
}

/// Checks the `i`th identity override; `feature` gives the plan index of a state's feature
/// (registering it on the first read, only looking it up on the second).
pub(super) fn check(
    i: usize,
    io: &IdentityOverride,
    limits: &Limits,
    mut feature: impl FnMut(&str, &FeatureState) -> Result<usize>,
) -> Result<PlanIdentity> {
    let path = format!("identity_overrides[{i}]");
    validate_identifier(&io.identifier).map_err(at(&path))?;
    let mut overrides: Vec<(usize, bool, Value, Option<String>)> = Vec::new();
    for (k, fs) in io.identity_features.iter().enumerate() {
        let fpath = format!("{path}.identity_features[{k}]");
        let f = feature(&fpath, fs)?;
        validate_flag_value(
            &format!("{fpath}.feature_state_value"),
            &fs.feature_state_value,
            limits,
        )?;
        if overrides.iter().any(|(g, ..)| *g == f) {
            return Err(StoreError::invalid(
                format!("{fpath}.feature"),
                "the identity overrides this feature twice",
            ));
        }
        overrides.push((
            f,
            fs.enabled,
            fs.feature_state_value.clone(),
            fs.featurestate_uuid.clone(),
        ));
    }
    Ok(PlanIdentity {
        identifier: io.identifier.clone(),
        overrides,
    })
}

/// The identifiers met so far, as 128-bit digests (SHA-256, truncated): 16 bytes each however
/// long the identifier, and two different identifiers never share one in practice (the same
/// odds as two random UUIDs being equal).
#[derive(Default)]
pub(super) struct Seen(HashSet<u128, BuildHasherDefault<Prehashed>>);

impl Seen {
    /// Refuses an identifier met before.
    pub fn insert(&mut self, i: usize, identifier: &str) -> Result<()> {
        let digest = Sha256::digest(identifier.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        if self.0.insert(u128::from_le_bytes(first)) {
            Ok(())
        } else {
            Err(StoreError::invalid(
                format!("identity_overrides[{i}].identifier"),
                format!("identity {identifier:?} appears twice"),
            ))
        }
    }
}

/// The keys of [`Seen`] are digests already: the set's hash is their low bits.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

/// Identities per `INSERT INTO identities` (3 parameters each).
const IDENTITY_ROWS: usize = 500;
/// Overrides per `INSERT INTO identity_overrides` (7 parameters each; both backends accept
/// well over 7,000 parameters).
const OVERRIDE_ROWS: usize = 1_000;

/// `($1, $2, $3), ($4, $5, $6), …`: `rows` tuples of `width` placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let mut s = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("${}", r * width + c + 1));
        }
        s.push(')');
    }
    s
}

/// Writes checked identities and their overrides: identities are created as needed (existing
/// ones, with their traits, kept), then their overrides inserted. `features` maps plan feature
/// indices to row ids. The environment's old overrides must be gone already.
pub(super) async fn write_batch(
    tx: &mut Tx,
    batch: &[PlanIdentity],
    features: &[i64],
    environment: i64,
    now: i64,
) -> Result<()> {
    for chunk in batch.chunks(IDENTITY_ROWS) {
        let statement = format!(
            "INSERT INTO identities (environment_id, identifier, created_at) VALUES {} \
             ON CONFLICT (environment_id, identifier) DO UPDATE SET identifier = excluded.identifier \
             RETURNING id, identifier",
            placeholders(chunk.len(), 3)
        );
        let rows: Vec<(i64, String)> = sql!(&mut *tx, |c| {
            let mut q = sqlx::query_as(&statement);
            for p in chunk {
                q = q.bind(environment).bind(&p.identifier).bind(now);
            }
            q.fetch_all(c).await?
        });
        // RETURNING's order is not promised: match rows by identifier (unique in the batch).
        let ids: std::collections::HashMap<&str, i64> =
            rows.iter().map(|(id, s)| (s.as_str(), *id)).collect();
        let mut values = Vec::new();
        for p in chunk {
            let identity = *ids
                .get(p.identifier.as_str())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "identities",
                    detail: "upsert returned no row".into(),
                })?;
            for (feature, enabled, value, uuid) in &p.overrides {
                let uuid = uuid
                    .as_deref()
                    .and_then(|u| uuid::Uuid::parse_str(u).ok())
                    .unwrap_or_else(uuid::Uuid::new_v4);
                values.push((
                    identity,
                    features[*feature],
                    *enabled,
                    encode_value(value),
                    uuid.to_string(),
                ));
            }
        }
        for rows in values.chunks(OVERRIDE_ROWS) {
            let statement = format!(
                "INSERT INTO identity_overrides (identity_id, feature_id, environment_id, enabled, \
                 value, uuid, updated_at) VALUES {}",
                placeholders(rows.len(), 7)
            );
            sql!(&mut *tx, |c| {
                let mut q = sqlx::query(&statement);
                for (identity, feature, enabled, value, uuid) in rows {
                    q = q
                        .bind(*identity)
                        .bind(*feature)
                        .bind(environment)
                        .bind(*enabled)
                        .bind(value)
                        .bind(uuid)
                        .bind(now);
                }
                q.execute(c).await?.rows_affected()
            });
        }
    }
    Ok(())
}
