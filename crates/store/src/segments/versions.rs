//! History of a segment's definition (its name, description and rules): every change through
//! the segment write paths (create, PUT/PATCH, delete, restore) records a version — revision,
//! author, time and the definition after the change — in the change's own transaction, so a
//! version exists if and only if its change committed. The previous version is the "before".
//!
//! Write paths call [`track`] before they read the segment: it locks the row (so concurrent
//! edits are versioned one after another) and records a `baseline` first when the row no
//! longer matches the last version (history that began after the segment was created, or a
//! write outside the versioned paths). Then [`record`] after the write. An import, which
//! rewrites a project's segments wholesale, and a restore are in [`super::version_apply`].
//!
//! The stored form is compact: `[name, description, rules]` as JSON, deflated.

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use super::rules::SegmentRule;
use super::version_diff::{diff, SegmentDiff};
use super::{get, Segment};
use crate::{sql, Change, Page, PageRequest, Result, StoreError, Tx};

pub use super::version_apply::restore;
pub(crate) use super::version_apply::{after_rewrite, before_rewrite};

/// What a segment version records: the segment's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentDefinition {
    pub name: String,
    pub description: Option<String>,
    pub rules: Vec<SegmentRule>,
}

impl SegmentDefinition {
    pub fn of(s: &Segment) -> SegmentDefinition {
        SegmentDefinition {
            name: s.name.clone(),
            description: s.description.clone(),
            rules: s.rules.clone(),
        }
    }

    /// The bytes a version stores.
    pub fn encode(&self) -> Vec<u8> {
        let json =
            serde_json::to_vec(&(&self.name, &self.description, &self.rules)).unwrap_or_default();
        let mut z = DeflateEncoder::new(Vec::with_capacity(json.len() / 2), Compression::new(6));
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&json);
        z.finish().unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentDefinition> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "segment_versions.definition",
            detail,
        };
        let mut json = Vec::new();
        DeflateDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(e.to_string()))?;
        let (name, description, rules) =
            serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
        Ok(SegmentDefinition {
            name,
            description,
            rules,
        })
    }
}

/// How a segment version came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SegmentVersionKind {
    Created,
    /// A PUT or PATCH.
    Change,
    /// A restore of an earlier version (`restored_from`).
    Restore,
    /// The segment was deleted; the version holds the definition it had.
    Deleted,
    /// The definition as found when no version described it. Its author is unknown.
    Baseline,
}

impl SegmentVersionKind {
    fn as_str(self) -> &'static str {
        match self {
            SegmentVersionKind::Created => "created",
            SegmentVersionKind::Change => "change",
            SegmentVersionKind::Restore => "restore",
            SegmentVersionKind::Deleted => "deleted",
            SegmentVersionKind::Baseline => "baseline",
        }
    }

    fn parse(s: &str) -> Result<SegmentVersionKind> {
        Ok(match s {
            "created" => SegmentVersionKind::Created,
            "change" => SegmentVersionKind::Change,
            "restore" => SegmentVersionKind::Restore,
            "deleted" => SegmentVersionKind::Deleted,
            "baseline" => SegmentVersionKind::Baseline,
            other => {
                return Err(StoreError::Corrupt {
                    what: "segment_versions.kind",
                    detail: format!("unknown kind {other:?}"),
                })
            }
        })
    }
}

/// A segment version, as listed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentVersion {
    pub id: i64,
    pub project: i64,
    pub segment: i64,
    /// 1, 2, 3… per segment.
    pub revision: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub kind: SegmentVersionKind,
    /// Who made the change, as the audit log shows it; null for a baseline.
    pub author: Option<String>,
    /// For a restore, the version it brought back.
    pub restored_from: Option<i64>,
}

/// A segment version with its definition and what it changed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentVersionDetail {
    #[serde(flatten)]
    pub version: SegmentVersion,
    /// The definition after this version's change (for `deleted`: the one it had).
    pub definition: SegmentDefinition,
    /// The version before this one (null for the first).
    pub previous_version: Option<i64>,
    /// What this version changed against the previous one (null for the first).
    pub diff: Option<SegmentDiff>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    project_id: i64,
    segment_id: i64,
    revision: i64,
    created_at: i64,
    kind: String,
    author: Option<String>,
    restored_from: Option<i64>,
    definition: Vec<u8>,
}

impl Row {
    fn split(self) -> Result<(SegmentVersion, Vec<u8>)> {
        Ok((
            SegmentVersion {
                id: self.id,
                project: self.project_id,
                segment: self.segment_id,
                revision: self.revision,
                created_at: self.created_at,
                kind: SegmentVersionKind::parse(&self.kind)?,
                author: self.author,
                restored_from: self.restored_from,
            },
            self.definition,
        ))
    }
}

const COLUMNS: &str =
    "id, project_id, segment_id, revision, created_at, kind, author, restored_from, definition";

/// The change is about to write segment `id` of the project: locks its row, and records a
/// baseline version when the row differs from the last version. Does nothing for a segment
/// that does not exist (the write path answers 404).
pub(crate) async fn track(ch: &mut Change, project_id: i64, id: i64) -> Result<()> {
    let locked = sql!(ch.tx(), |c| {
        sqlx::query("UPDATE segments SET name = name WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    if locked == 0 {
        return Ok(());
    }
    let now = SegmentDefinition::of(&get(ch.tx(), project_id, id).await?);
    let last = last_definition(ch.tx(), id).await?;
    if last.as_ref() != Some(&now) {
        insert(
            ch,
            project_id,
            id,
            SegmentVersionKind::Baseline,
            None,
            None,
            &now,
        )
        .await?;
    }
    Ok(())
}

/// Records a version of segment `id` made by the change's actor.
pub(crate) async fn record(
    ch: &mut Change,
    project_id: i64,
    id: i64,
    kind: SegmentVersionKind,
    restored_from: Option<i64>,
    definition: &SegmentDefinition,
) -> Result<()> {
    if kind == SegmentVersionKind::Created {
        // An import may give a new segment the id of a deleted one (ids it writes explicitly
        // are reused when free): that segment's versions are not this one's history.
        sql!(ch.tx(), |c| {
            sqlx::query("DELETE FROM segment_versions WHERE segment_id = $1")
                .bind(id)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    let author = ch.actor().name.clone();
    insert(
        ch,
        project_id,
        id,
        kind,
        Some(author),
        restored_from,
        definition,
    )
    .await
}

async fn insert(
    ch: &mut Change,
    project_id: i64,
    id: i64,
    kind: SegmentVersionKind,
    author: Option<String>,
    restored_from: Option<i64>,
    definition: &SegmentDefinition,
) -> Result<()> {
    let now = ch.now_ms();
    let bytes = definition.encode();
    sql!(ch.tx(), |c| {
        sqlx::query(
            "INSERT INTO segment_versions (project_id, segment_id, revision, created_at, kind, \
                 author, restored_from, definition) \
             SELECT $1, $2, COALESCE(MAX(revision), 0) + 1, $3, $4, $5, $6, $7 \
             FROM segment_versions WHERE segment_id = $2",
        )
        .bind(project_id)
        .bind(id)
        .bind(now)
        .bind(kind.as_str())
        .bind(&author)
        .bind(restored_from)
        .bind(&bytes)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

pub(super) async fn segment_ids(tx: &mut Tx, project_id: i64) -> Result<Vec<i64>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM segments WHERE project_id = $1 ORDER BY id")
            .bind(project_id)
            .fetch_all(c)
            .await?
    }))
}

pub(super) async fn last_definition(tx: &mut Tx, id: i64) -> Result<Option<SegmentDefinition>> {
    let last: Option<Vec<u8>> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT definition FROM segment_versions WHERE segment_id = $1 \
             ORDER BY revision DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    last.map(|b| SegmentDefinition::decode(&b)).transpose()
}

/// 404 unless segment `id` exists in the project or did (it has versions there).
pub async fn require_segment(tx: &mut Tx, project_id: i64, id: i64) -> Result<()> {
    let known: bool = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM segments WHERE id = $1 AND project_id = $2) \
             OR EXISTS (SELECT 1 FROM segment_versions WHERE segment_id = $1 \
                 AND project_id = $2)",
        )
        .bind(id)
        .bind(project_id)
        .fetch_one(c)
        .await?
    });
    if known {
        Ok(())
    } else {
        Err(StoreError::not_found("segment"))
    }
}

/// The segment's versions, newest first.
pub async fn list(
    tx: &mut Tx,
    project_id: i64,
    id: i64,
    page: PageRequest,
) -> Result<Page<SegmentVersion>> {
    let count: i64 = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM segment_versions WHERE segment_id = $1 AND project_id = $2",
        )
        .bind(id)
        .bind(project_id)
        .fetch_one(c)
        .await?
    });
    let rows: Vec<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM segment_versions WHERE segment_id = $1 AND project_id = $2 \
             ORDER BY revision DESC LIMIT $3 OFFSET $4"
        ))
        .bind(id)
        .bind(project_id)
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let results = rows
        .into_iter()
        .map(|r| r.split().map(|(v, _)| v))
        .collect::<Result<_>>()?;
    Ok(Page { count, results })
}

/// Version `version` of the segment with its definition; `NotFound` when it is a version of
/// something else.
pub async fn get_version(
    tx: &mut Tx,
    project_id: i64,
    id: i64,
    version: i64,
) -> Result<(SegmentVersion, SegmentDefinition)> {
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM segment_versions \
             WHERE id = $1 AND segment_id = $2 AND project_id = $3"
        ))
        .bind(version)
        .bind(id)
        .bind(project_id)
        .fetch_optional(c)
        .await?
    });
    let (v, bytes) = row.ok_or(StoreError::not_found("version"))?.split()?;
    Ok((v, SegmentDefinition::decode(&bytes)?))
}

/// Version `version` with its definition and its diff against the version before it.
pub async fn detail(
    tx: &mut Tx,
    project_id: i64,
    id: i64,
    version: i64,
) -> Result<SegmentVersionDetail> {
    let (v, definition) = get_version(tx, project_id, id, version).await?;
    let previous: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT id FROM segment_versions WHERE segment_id = $1 AND revision < $2 \
             ORDER BY revision DESC LIMIT 1",
        )
        .bind(id)
        .bind(v.revision)
        .fetch_optional(c)
        .await?
    });
    let diff = match previous {
        Some(p) => {
            let (_, before) = get_version(tx, project_id, id, p).await?;
            Some(diff(&before, &definition))
        }
        None => None,
    };
    Ok(SegmentVersionDetail {
        version: v,
        definition,
        previous_version: previous,
        diff,
    })
}

/// The segment's newest version (after a change committed, the one it recorded).
pub async fn newest(tx: &mut Tx, project_id: i64, id: i64) -> Result<SegmentVersionDetail> {
    let newest = list(tx, project_id, id, PageRequest::new(1, 1))
        .await?
        .results
        .into_iter()
        .next()
        .ok_or(StoreError::not_found("version"))?;
    detail(tx, project_id, id, newest.id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::rules::{Condition, RuleType};

    #[test]
    fn the_stored_form_round_trips() {
        let d = SegmentDefinition {
            name: "beta".into(),
            description: Some("testers".into()),
            rules: vec![SegmentRule {
                rule_type: RuleType::All,
                rules: vec![],
                conditions: vec![Condition {
                    operator: flagstone_engine::Operator::Equal,
                    property: Some("plan".into()),
                    value: Some("beta".into()),
                    description: None,
                }],
            }],
        };
        assert_eq!(SegmentDefinition::decode(&d.encode()).unwrap(), d);
        assert!(SegmentDefinition::decode(b"not deflate").is_err());
    }
}
