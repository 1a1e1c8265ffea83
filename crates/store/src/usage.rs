//! How much of its limits a project uses: counts per project and per environment, the largest
//! segment, and each environment's published document against the document budget. Read by
//! `GET /api/v1/projects/{id}/usage/` (the dashboard's pipeline page); nothing here enforces a
//! limit (that happens where each change is written).

use serde::Serialize;

use crate::segments::{decode_rules, SegmentRule};
use crate::{projects, sql, Limits, Result, Tx};

/// A project's limits and what it uses of each.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectUsage {
    pub project: i64,
    pub limits: Limits,
    /// Features in the project (limit `max_features`).
    pub features: i64,
    /// Segments in the project (limit `max_segments`).
    pub segments: i64,
    /// Conditions of the segment with the most (limit `max_conditions_per_segment`).
    pub largest_segment_conditions: i64,
    /// Deepest rule nesting of any segment (limit `max_rule_depth`).
    pub deepest_segment_rules: i64,
    pub environments: Vec<EnvironmentUsage>,
}

/// One environment's counts and its published document.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentUsage {
    pub environment_id: i64,
    pub name: String,
    pub api_key: String,
    pub revision: i64,
    /// Segment overrides in this environment (limit `max_segment_overrides`).
    pub segment_overrides: i64,
    /// Identity overrides in this environment (limit `max_identity_overrides`).
    pub identity_overrides: i64,
    /// The published document's revision, uncompressed bytes (limit `max_document_bytes`),
    /// compressed bytes, build time; null before the first publish.
    pub published_revision: Option<i64>,
    pub document_bytes: Option<i64>,
    pub compressed_bytes: Option<i64>,
    pub built_at: Option<i64>,
    pub build_ms: Option<i64>,
}

/// The usage of every limit of a project that can be counted.
pub async fn project(tx: &mut Tx, project_id: i64) -> Result<ProjectUsage> {
    let project = projects::get(tx, project_id).await?;
    let features: i64 = sql!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM features WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(c)
            .await?
    });
    let rules: Vec<String> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT rules FROM segments WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(c)
            .await?
    });
    let (mut largest, mut deepest) = (0, 0);
    for r in &rules {
        let rules = decode_rules(r)?;
        largest = largest.max(count_conditions(&rules));
        deepest = deepest.max(depth(&rules));
    }
    let environments = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT e.id AS environment_id, e.name, e.api_key, e.revision, \
                 (SELECT COUNT(*) FROM segment_overrides o WHERE o.environment_id = e.id) \
                     AS segment_overrides, \
                 (SELECT COUNT(*) FROM identity_overrides i WHERE i.environment_id = e.id) \
                     AS identity_overrides, \
                 d.revision AS published_revision, d.bytes AS document_bytes, \
                 d.compressed_bytes, d.built_at, d.build_ms \
             FROM environments e LEFT JOIN environment_documents d ON d.environment_id = e.id \
             WHERE e.project_id = $1 ORDER BY e.id",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    Ok(ProjectUsage {
        project: project_id,
        limits: project.limits,
        features,
        segments: rules.len() as i64,
        largest_segment_conditions: largest,
        deepest_segment_rules: deepest,
        environments,
    })
}

fn count_conditions(rules: &[SegmentRule]) -> i64 {
    rules
        .iter()
        .map(|r| r.conditions.len() as i64 + count_conditions(&r.rules))
        .sum()
}

/// Nesting depth as `max_rule_depth` counts it: a top-level rule is depth 1.
fn depth(rules: &[SegmentRule]) -> i64 {
    rules.iter().map(|r| 1 + depth(&r.rules)).max().unwrap_or(0)
}
