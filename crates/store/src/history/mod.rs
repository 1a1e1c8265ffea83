//! History of a feature's configuration in an environment (its default state, its segment
//! overrides and their priorities, its multivariate allocations): every change that goes
//! through a versioned write path records a version — revision, author, time and the
//! configuration after the change — in the change's own transaction, so a version exists if
//! and only if its change committed. The previous version is the "before".
//!
//! The hooks are two calls: a write path calls [`track`] before it writes (which records a
//! `baseline` version first when the rows no longer match the last version: history that
//! began after the feature was created, or rows written outside the versioned paths, such as
//! an import), and [`Change::commit`] calls [`record`] with the revisions it bumped.
//! [`restore`] applies an old version as a new change.

mod config;
pub mod diff;
mod restore;

use std::collections::BTreeSet;

use serde::Serialize;

pub use config::{current, FeatureConfig, OverrideConfig};
pub use diff::{diff, ConfigDiff, FieldChange, OverrideChange};
pub(crate) use restore::apply_config;
pub use restore::{plan_restore, restore, RestorePlan};

use crate::{clock::now_ms, sql, Actor, Change, Page, PageRequest, Result, StoreError, Tx};

/// How a version came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// An admin change through the API (or the store's write paths).
    Change,
    /// A restore of an earlier version (`restored_from`).
    Restore,
    /// The configuration as found when no version described it: before history began, or
    /// after a write outside the versioned paths (an import). Its author is unknown.
    Baseline,
}

impl VersionKind {
    fn as_str(self) -> &'static str {
        match self {
            VersionKind::Change => "change",
            VersionKind::Restore => "restore",
            VersionKind::Baseline => "baseline",
        }
    }

    fn parse(s: &str) -> Result<VersionKind> {
        match s {
            "change" => Ok(VersionKind::Change),
            "restore" => Ok(VersionKind::Restore),
            "baseline" => Ok(VersionKind::Baseline),
            other => Err(StoreError::Corrupt {
                what: "feature_versions.kind",
                detail: format!("unknown kind {other:?}"),
            }),
        }
    }
}

/// What a change in progress has to version (held by [`Change`]).
#[derive(Debug, Default)]
pub struct Pending {
    /// (environment, feature) pairs whose configuration the change writes.
    tracked: BTreeSet<(i64, i64)>,
    /// Set by a restore: the version it applies.
    restored_from: Option<i64>,
}

/// A version, as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureVersion {
    pub id: i64,
    pub environment: i64,
    pub feature: i64,
    /// The environment's revision once the change committed.
    pub revision: i64,
    /// An ISO-8601 string in the API, as every admin timestamp.
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    pub kind: VersionKind,
    /// Who made the change, as the audit log shows it (a user's email, `api-key:<name>`,
    /// `admin-key:<name>`); null for a baseline.
    pub author: Option<String>,
    /// For a restore, the version it brought back.
    pub restored_from: Option<i64>,
}

/// A version with its configuration and what it changed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureVersionDetail {
    #[serde(flatten)]
    pub version: FeatureVersion,
    /// The feature's configuration in the environment after this version's change.
    pub configuration: FeatureConfig,
    /// The version before this one (null for the first).
    pub previous_version: Option<i64>,
    /// What this version changed against the previous one (null for the first).
    pub diff: Option<ConfigDiff>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    environment_id: i64,
    feature_id: i64,
    revision: i64,
    created_at: i64,
    kind: String,
    author: Option<String>,
    restored_from: Option<i64>,
}

impl Row {
    fn version(self) -> Result<FeatureVersion> {
        Ok(FeatureVersion {
            id: self.id,
            environment: self.environment_id,
            feature: self.feature_id,
            revision: self.revision,
            created_at: self.created_at,
            kind: VersionKind::parse(&self.kind)?,
            author: self.author,
            restored_from: self.restored_from,
        })
    }
}

const COLUMNS: &str =
    "id, environment_id, feature_id, revision, created_at, kind, author, restored_from";

/// The change is about to write `feature_id`'s configuration in `environment_id`: it will be
/// versioned when the change commits. Call before writing; a baseline version is recorded if
/// the rows differ from the last version.
pub async fn track(ch: &mut Change, environment_id: i64, feature_id: i64) -> Result<()> {
    if !ch.history().tracked.insert((environment_id, feature_id)) {
        return Ok(());
    }
    let Some(now) = current(ch.tx(), environment_id, feature_id).await? else {
        return Ok(());
    };
    let last = last_config(ch.tx(), environment_id, feature_id).await?;
    if last.as_ref() == Some(&now) {
        return Ok(());
    }
    let revision: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT revision FROM environments WHERE id = $1")
            .bind(environment_id)
            .fetch_one(c)
            .await?
    });
    insert(
        ch.tx(),
        environment_id,
        feature_id,
        revision,
        now_ms(),
        VersionKind::Baseline,
        None,
        None,
        &now,
    )
    .await
}

/// Marks the change as a restore of `version` (its versions are of kind `restore`).
pub(crate) fn restoring(ch: &mut Change, version: i64) {
    ch.history().restored_from = Some(version);
}

/// Records a version of every tracked pair whose environment the change bumped; called by
/// [`Change::commit`] in its transaction.
pub(crate) async fn record(
    tx: &mut Tx,
    actor: &Actor,
    pending: &Pending,
    revisions: &[(i64, i64)],
    now: i64,
) -> Result<()> {
    let kind = match pending.restored_from {
        Some(_) => VersionKind::Restore,
        None => VersionKind::Change,
    };
    for &(environment_id, feature_id) in &pending.tracked {
        let Some(&(_, revision)) = revisions.iter().find(|(e, _)| *e == environment_id) else {
            continue;
        };
        // A feature deleted by this very change has no configuration left.
        let Some(config) = current(tx, environment_id, feature_id).await? else {
            continue;
        };
        insert(
            tx,
            environment_id,
            feature_id,
            revision,
            now,
            kind,
            Some(&actor.name),
            pending.restored_from,
            &config,
        )
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    revision: i64,
    now: i64,
    kind: VersionKind,
    author: Option<&str>,
    restored_from: Option<i64>,
    config: &FeatureConfig,
) -> Result<()> {
    let bytes = config.encode();
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO feature_versions (environment_id, feature_id, revision, created_at, \
                 kind, author, restored_from, config) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(environment_id)
        .bind(feature_id)
        .bind(revision)
        .bind(now)
        .bind(kind.as_str())
        .bind(author)
        .bind(restored_from)
        .bind(&bytes)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

async fn last_config(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
) -> Result<Option<FeatureConfig>> {
    let bytes: Option<Vec<u8>> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT config FROM feature_versions WHERE environment_id = $1 AND feature_id = $2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(environment_id)
        .bind(feature_id)
        .fetch_optional(c)
        .await?
    });
    bytes.map(|b| FeatureConfig::decode(&b)).transpose()
}

/// The feature's versions in the environment, newest first.
pub async fn list(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    page: PageRequest,
) -> Result<Page<FeatureVersion>> {
    let count: i64 = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM feature_versions WHERE environment_id = $1 AND feature_id = $2",
        )
        .bind(environment_id)
        .bind(feature_id)
        .fetch_one(c)
        .await?
    });
    let rows: Vec<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM feature_versions WHERE environment_id = $1 \
             AND feature_id = $2 ORDER BY id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(environment_id)
        .bind(feature_id)
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let results = rows.into_iter().map(Row::version).collect::<Result<_>>()?;
    Ok(Page { count, results })
}

/// Version `id` of the feature in the environment with its configuration; `NotFound` when it
/// is a version of something else.
pub async fn get(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    id: i64,
) -> Result<(FeatureVersion, FeatureConfig)> {
    let row: Option<(Vec<u8>, Row)> = {
        let r: Option<RowWithConfig> = sql!(tx, |c| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS}, config FROM feature_versions \
                 WHERE id = $1 AND environment_id = $2 AND feature_id = $3"
            ))
            .bind(id)
            .bind(environment_id)
            .bind(feature_id)
            .fetch_optional(c)
            .await?
        });
        r.map(|r| (r.config, r.row))
    };
    let (bytes, row) = row.ok_or(StoreError::not_found("version"))?;
    Ok((row.version()?, FeatureConfig::decode(&bytes)?))
}

#[derive(sqlx::FromRow)]
struct RowWithConfig {
    #[sqlx(flatten)]
    row: Row,
    config: Vec<u8>,
}

/// Version `id` with its configuration and its diff against the version before it.
pub async fn detail(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    id: i64,
) -> Result<FeatureVersionDetail> {
    let (version, configuration) = get(tx, environment_id, feature_id, id).await?;
    let previous: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT MAX(id) FROM feature_versions \
             WHERE environment_id = $1 AND feature_id = $2 AND id < $3",
        )
        .bind(environment_id)
        .bind(feature_id)
        .bind(id)
        .fetch_one(c)
        .await?
    });
    let diff = match previous {
        Some(p) => {
            let (_, before) = get(tx, environment_id, feature_id, p).await?;
            Some(diff(&before, &configuration))
        }
        None => None,
    };
    Ok(FeatureVersionDetail {
        version,
        configuration,
        previous_version: previous,
        diff,
    })
}

/// What an environment's versions take, for the storage benchmark.
#[derive(Debug, Clone, Copy)]
pub struct StorageFigures {
    pub versions: i64,
    /// Bytes of the stored (deflated) configurations.
    pub config_bytes: i64,
    /// The whole table with its index and per-row overhead, where the backend can tell
    /// (PostgreSQL: `pg_total_relation_size`; SQLite: the `dbstat` table when compiled in).
    /// Covers every environment's versions.
    pub table_bytes: Option<i64>,
    /// Versions in the table, all environments (what `table_bytes` covers).
    pub table_versions: i64,
}

/// What the versions of `environment_id` (and the table) take.
pub async fn storage(tx: &mut Tx, environment_id: i64) -> Result<StorageFigures> {
    let (versions, config_bytes): (i64, Option<i64>) = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(LENGTH(config)) AS BIGINT) FROM feature_versions \
             WHERE environment_id = $1",
        )
        .bind(environment_id)
        .fetch_one(c)
        .await?
    });
    let table_versions: i64 = sql!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM feature_versions")
            .fetch_one(c)
            .await?
    });
    let table_bytes: Option<i64> = match tx {
        Tx::Postgres(t) => {
            sqlx::query_scalar("SELECT pg_total_relation_size('feature_versions')")
                .fetch_one(&mut **t)
                .await?
        }
        Tx::Sqlite(t, _) => sqlx::query_scalar(
            "SELECT CAST(SUM(pgsize) AS BIGINT) FROM dbstat \
             WHERE name IN ('feature_versions', 'feature_versions_history')",
        )
        .fetch_one(&mut **t)
        .await
        .ok()
        .flatten(),
    };
    Ok(StorageFigures {
        versions,
        config_bytes: config_bytes.unwrap_or(0),
        table_bytes,
        table_versions,
    })
}
