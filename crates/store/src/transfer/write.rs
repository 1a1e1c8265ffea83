//! Writes a checked [`Plan`] into the target project: features (matched by their id in the
//! source when the document comes from the project's source — see [`IdSpace`] — then by name)
//! and their options (by key, then value), and segments (likewise, by hashing id then name). New rows take the document's ids as row ids
//! wherever they are free ([`super::ids`]); segments always keep theirs as hashing id.
//! Environment-level rows are [`super::env_rows`]'s.

use std::collections::HashMap;

use super::env_rows::{overrides, states};
use super::ids::{insert_with_id, Ids};
use super::plan::{Plan, PlanState};
use super::IdSpace;
use crate::values::encode_value;
use crate::{clock::now_ms, environments::insert_default_state, sql, Result, Tx};

pub(crate) struct Written {
    pub deleted_features: usize,
    pub deleted_segments: usize,
    /// Row ids of the plan's features, for the identity overrides written next.
    pub features: Vec<i64>,
}

/// Row ids of the plan's features and, per feature, of all its options (listed ones first,
/// in plan order, then the ones the document does not list).
pub(super) struct Mapped {
    pub features: Vec<i64>,
    pub options: Vec<Vec<i64>>,
}

pub(crate) async fn rows(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &mut Plan,
    space: IdSpace,
    project: i64,
    environment: i64,
) -> Result<Written> {
    let (features, deleted_features) = features(tx, ids, plan, space, project, environment).await?;
    let options = options(tx, ids, plan, &features).await?;
    let mapped = Mapped { features, options };
    let (segments, deleted_segments) = segments(tx, ids, plan, space, project).await?;
    states(tx, ids, plan, &mapped, environment).await?;
    overrides(tx, ids, plan, &mapped, &segments, environment).await?;
    Ok(Written {
        deleted_features,
        deleted_segments,
        features: mapped.features,
    })
}

/// An existing row of the project: id, its id in the source it was imported from (a
/// feature's `source_id`, a segment's `hash_id`; NULL when created in Flagstone), name.
type Existing = (i64, Option<i64>, String);

/// Matches existing rows of the project to planned `(document id, name)`s: by comparable id
/// when the document's ids come from the same source, then by `key(name)`.
fn match_rows(
    existing: &[Existing],
    planned: &[(i64, String)],
    space: IdSpace,
    key: fn(&str) -> String,
) -> Vec<Option<i64>> {
    let mut taken = std::collections::HashSet::new();
    let by_id: HashMap<i64, usize> = match space {
        IdSpace::SameSource => existing
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.1.map(|s| (s, i)))
            .collect(),
        IdSpace::Foreign => HashMap::new(),
    };
    let mut out: Vec<Option<i64>> = planned
        .iter()
        .map(|(id, _)| {
            by_id.get(id).map(|&i| {
                taken.insert(i);
                existing[i].0
            })
        })
        .collect();
    for (slot, (_, name)) in out.iter_mut().zip(planned) {
        if slot.is_none() {
            let found = existing
                .iter()
                .enumerate()
                .find(|(i, e)| !taken.contains(i) && key(&e.2) == key(name));
            if let Some((i, e)) = found {
                taken.insert(i);
                *slot = Some(e.0);
            }
        }
    }
    out
}

async fn delete_unmatched(
    tx: &mut Tx,
    table: &str,
    existing: &[Existing],
    matched: &[Option<i64>],
) -> Result<usize> {
    let keep: std::collections::HashSet<i64> = matched.iter().flatten().copied().collect();
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    let mut n = 0;
    for (id, ..) in existing.iter().filter(|(id, ..)| !keep.contains(id)) {
        sql!(&mut *tx, |c| sqlx::query(&sql)
            .bind(*id)
            .execute(c)
            .await?
            .rows_affected());
        n += 1;
    }
    Ok(n)
}

/// Gives renamed rows a placeholder name first, so swapping two names never collides.
async fn park_names(
    tx: &mut Tx,
    table: &str,
    existing: &[Existing],
    matched: &[Option<i64>],
    names: &[String],
) -> Result<()> {
    let current: HashMap<i64, &String> = existing.iter().map(|(id, _, n)| (*id, n)).collect();
    let sql = format!("UPDATE {table} SET name = $2 WHERE id = $1");
    for (m, name) in matched.iter().zip(names) {
        if let Some(id) = m {
            if current.get(id).is_some_and(|n| *n != name) {
                let parked = format!("\u{1}import-{id}");
                sql!(&mut *tx, |c| sqlx::query(&sql)
                    .bind(*id)
                    .bind(&parked)
                    .execute(c)
                    .await?
                    .rows_affected());
            }
        }
    }
    Ok(())
}

/// The project's rows of `table`, with `id_column` as their comparable id (`NULL` for none).
async fn existing_rows(
    tx: &mut Tx,
    table: &str,
    id_column: &str,
    project: i64,
) -> Result<Vec<Existing>> {
    let sql = format!(
        "SELECT id, CAST({id_column} AS BIGINT), name FROM {table} WHERE project_id = $1 \
         ORDER BY id"
    );
    Ok(sql!(&mut *tx, |c| sqlx::query_as(&sql)
        .bind(project)
        .fetch_all(c)
        .await?))
}

pub(super) fn state_of(plan: &Plan, feature: usize) -> Option<&PlanState> {
    plan.states.iter().find(|s| s.feature == feature)
}

async fn features(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &Plan,
    space: IdSpace,
    project: i64,
    environment: i64,
) -> Result<(Vec<i64>, usize)> {
    let existing = existing_rows(tx, "features", "source_id", project).await?;
    let planned: Vec<(i64, String)> = plan
        .features
        .iter()
        .map(|f| (f.doc_id, f.name.clone()))
        .collect();
    let matched = match_rows(&existing, &planned, space, str::to_lowercase);
    let deleted = delete_unmatched(tx, "features", &existing, &matched).await?;
    let names: Vec<String> = planned.iter().map(|p| p.1.clone()).collect();
    park_names(tx, "features", &existing, &matched, &names).await?;
    let others: Vec<i64> = sql!(&mut *tx, |c| {
        sqlx::query_scalar("SELECT id FROM environments WHERE project_id = $1 AND id <> $2")
            .bind(project)
            .bind(environment)
            .fetch_all(c)
            .await?
    });
    let now = now_ms();
    let mut out = Vec::with_capacity(plan.features.len());
    for (i, (f, m)) in plan.features.iter().zip(&matched).enumerate() {
        let id = match m {
            Some(id) => {
                sql!(&mut *tx, |c| {
                    sqlx::query(
                        "UPDATE features SET name = $2, type = $3, is_server_key_only = $4, \
                                 source_id = $5 WHERE id = $1",
                    )
                    .bind(*id)
                    .bind(&f.name)
                    .bind(f.kind)
                    .bind(f.server_key_only)
                    .bind(f.doc_id)
                    .execute(c)
                    .await?
                    .rows_affected()
                });
                *id
            }
            None => {
                // The new feature's defaults are this environment's state, so other
                // environments of the project start where this one is.
                let (enabled, value) = state_of(plan, i)
                    .map_or((false, None), |s| (s.enabled, encode_value(&s.value)));
                let (id, _) = insert_with_id!(
                    tx,
                    ids,
                    "features",
                    [
                        "project_id",
                        "name",
                        "type",
                        "initial_value",
                        "default_enabled",
                        "description",
                        "is_server_key_only",
                        "source_id",
                        "created_at"
                    ],
                    Some(f.doc_id).filter(|d| *d > 0),
                    |q| q
                        .bind(project)
                        .bind(&f.name)
                        .bind(f.kind)
                        .bind(&value)
                        .bind(enabled)
                        .bind(None::<String>)
                        .bind(f.server_key_only)
                        .bind(f.doc_id)
                        .bind(now)
                );
                for env in &others {
                    insert_default_state(tx, id, *env, enabled, value.as_deref(), now).await?;
                }
                id
            }
        };
        out.push(id);
    }
    Ok((out, deleted))
}

/// Matches the document's options to the feature's (by key, then value: option ids do not
/// feed bucketing and are not comparable across installations), updates or creates them, and
/// returns their row ids.
async fn options(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &Plan,
    features: &[i64],
) -> Result<Vec<Vec<i64>>> {
    let mut out = Vec::with_capacity(features.len());
    for (f, &feature_id) in plan.features.iter().zip(features) {
        let existing: Vec<(i64, Option<String>, Option<String>)> = sql!(&mut *tx, |c| {
            sqlx::query_as(
                "SELECT id, key, value FROM mv_options WHERE feature_id = $1 ORDER BY id",
            )
            .bind(feature_id)
            .fetch_all(c)
            .await?
        });
        let is_new = existing.is_empty();
        let mut taken = vec![false; existing.len()];
        let mut ids_of = Vec::with_capacity(f.options.len());
        for o in &f.options {
            let value = encode_value(&o.value);
            let pos = existing
                .iter()
                .enumerate()
                .position(|(i, e)| !taken[i] && o.key.is_some() && e.1 == o.key)
                .or_else(|| {
                    existing
                        .iter()
                        .enumerate()
                        .position(|(i, e)| !taken[i] && e.2 == value)
                });
            let id = match pos {
                Some(i) => {
                    taken[i] = true;
                    let id = existing[i].0;
                    // Clear the key first: two options may swap keys.
                    sql!(&mut *tx, |c| sqlx::query(
                        "UPDATE mv_options SET key = NULL, value = $2 WHERE id = $1"
                    )
                    .bind(id)
                    .bind(&value)
                    .execute(c)
                    .await?
                    .rows_affected());
                    id
                }
                None => {
                    // A new feature takes this environment's split as its default; an option
                    // added to an existing feature defaults to 0 %, so the other environments'
                    // states (which do not list it) keep their totals.
                    let default = if is_new { o.default_allocation } else { 0.0 };
                    insert_with_id!(
                        tx,
                        ids,
                        "mv_options",
                        [
                            "feature_id",
                            "value",
                            "default_percentage_allocation",
                            "key",
                            "uuid"
                        ],
                        o.doc_id.filter(|d| *d > 0),
                        |q| q
                            .bind(feature_id)
                            .bind(&value)
                            .bind(default)
                            .bind(None::<String>)
                            .bind(uuid::Uuid::new_v4().to_string())
                    )
                    .0
                }
            };
            ids_of.push(id);
        }
        for (id, o) in ids_of.iter().zip(&f.options) {
            if let Some(key) = &o.key {
                sql!(&mut *tx, |c| sqlx::query(
                    "UPDATE mv_options SET key = $2 WHERE id = $1"
                )
                .bind(*id)
                .bind(key)
                .execute(c)
                .await
                .map_err(crate::error::unique_as_conflict(
                    "multivariate_feature_option.key",
                    "two options of the feature have this key"
                ))?
                .rows_affected());
            }
        }
        // Options the document does not list still exist; they get 0 % below.
        ids_of.extend(
            existing
                .iter()
                .zip(&taken)
                .filter(|(_, t)| !**t)
                .map(|(e, _)| e.0),
        );
        out.push(ids_of);
    }
    Ok(out)
}

/// Segments: matched, updated or created, each with the document's id as its hashing id.
async fn segments(
    tx: &mut Tx,
    ids: &mut Ids,
    plan: &mut Plan,
    space: IdSpace,
    project: i64,
) -> Result<(Vec<i64>, usize)> {
    let existing = existing_rows(tx, "segments", "hash_id", project).await?;
    let planned: Vec<(i64, String)> = plan
        .segments
        .iter()
        .map(|s| (s.doc_id, s.name.clone()))
        .collect();
    let matched = match_rows(&existing, &planned, space, str::to_string);
    let deleted = delete_unmatched(tx, "segments", &existing, &matched).await?;
    let names: Vec<String> = planned.iter().map(|p| p.1.clone()).collect();
    park_names(tx, "segments", &existing, &matched, &names).await?;
    // Hashing ids are unique per project: give the matched rows placeholders (negative, unlike
    // any document's) first, so two segments may swap theirs.
    for id in matched.iter().flatten() {
        sql!(&mut *tx, |c| sqlx::query(
            "UPDATE segments SET hash_id = -id WHERE id = $1"
        )
        .bind(*id)
        .execute(c)
        .await?
        .rows_affected());
    }
    let now = now_ms();
    let mut out = Vec::with_capacity(plan.segments.len());
    for (s, m) in plan.segments.iter().zip(&matched) {
        ids.record_hash("segments", s.doc_id);
        let id = match m {
            Some(id) => {
                sql!(&mut *tx, |c| {
                    sqlx::query(
                        "UPDATE segments SET name = $2, rules = $3, updated_at = $4, hash_id = $5 \
                         WHERE id = $1",
                    )
                    .bind(*id)
                    .bind(&s.name)
                    .bind(&s.rules)
                    .bind(now)
                    .bind(s.doc_id)
                    .execute(c)
                    .await?
                    .rows_affected()
                });
                *id
            }
            None => {
                insert_with_id!(
                    tx,
                    ids,
                    "segments",
                    [
                        "project_id",
                        "name",
                        "description",
                        "rules",
                        "hash_id",
                        "created_at",
                        "updated_at"
                    ],
                    Some(s.doc_id),
                    |q| q
                        .bind(project)
                        .bind(&s.name)
                        .bind(None::<String>)
                        .bind(&s.rules)
                        .bind(s.doc_id)
                        .bind(now)
                        .bind(now)
                )
                .0
            }
        };
        out.push(id);
    }
    Ok((out, deleted))
}
