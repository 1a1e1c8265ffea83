//! How much of its limits a project uses: counts per project and per environment, the largest
//! segment, and each environment's published document against the document budget. Read by
//! `GET /api/v1/projects/{id}/usage/` (the dashboard's pipeline page); nothing here enforces a
//! limit (that happens where each change is written).

use serde::Serialize;

use crate::segments::{decode_rules, SegmentRule};
use crate::{projects, sql, LimitName, Limits, Result, Tx};

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

/// Whether a limits change may go below what a project already uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitLowering {
    /// Refuse it, naming each limit and the environments concerned (the default: a lowered
    /// `max_document_bytes` would park every environment whose document no longer fits).
    Refuse,
    /// Apply it anyway (`?force=true`); environments over a lowered document budget are parked
    /// at their next build and show on `/health/status`.
    Force,
}

/// A limit lowered below what the project already uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BelowUse {
    pub limit: LimitName,
    pub max: i64,
    /// The most any counted place uses (the project, a segment, or an environment).
    pub used: i64,
    /// The environments over the new limit, for limits counted per environment.
    pub environments: Vec<String>,
}

impl BelowUse {
    /// Whether this would stop publishing (rather than only refuse further additions).
    pub fn stops_publishing(&self) -> bool {
        self.limit == LimitName::MaxDocumentBytes
    }

    /// What the refusal says, in words.
    pub fn describe(&self) -> String {
        let what = match self.limit {
            LimitName::MaxFeatures => "features in the project".to_string(),
            LimitName::MaxSegments => "segments in the project".to_string(),
            LimitName::MaxConditionsPerSegment => "conditions in its largest segment".to_string(),
            LimitName::MaxRuleDepth => "levels of rules in its deepest segment".to_string(),
            _ => format!("in environment(s) {}", self.environments.join(", ")),
        };
        let consequence = if self.stops_publishing() {
            "those environments would stop publishing (their next build would be parked)"
        } else {
            "nothing more could be added until it is back under the limit"
        };
        format!(
            "{} = {} is below what is already used ({} {what}): {consequence}; \
             send the change again with ?force=true to apply it anyway",
            self.limit, self.max, self.used
        )
    }
}

impl ProjectUsage {
    /// Every limit that `after` lowers from `before` to below what is used now. Limits left
    /// as they are, raised, or not counted here (sizes of single values, traits) are never
    /// reported: a project already over a limit can still change its other settings.
    pub fn lowered_below_use(&self, before: &Limits, after: &Limits) -> Vec<BelowUse> {
        let mut out = Vec::new();
        let mut project = |limit, old: i64, new: i64, used: i64| {
            if new < old && used > new {
                out.push(BelowUse {
                    limit,
                    max: new,
                    used,
                    environments: Vec::new(),
                });
            }
        };
        project(
            LimitName::MaxFeatures,
            before.max_features,
            after.max_features,
            self.features,
        );
        project(
            LimitName::MaxSegments,
            before.max_segments,
            after.max_segments,
            self.segments,
        );
        project(
            LimitName::MaxConditionsPerSegment,
            before.max_conditions_per_segment,
            after.max_conditions_per_segment,
            self.largest_segment_conditions,
        );
        project(
            LimitName::MaxRuleDepth,
            before.max_rule_depth,
            after.max_rule_depth,
            self.deepest_segment_rules,
        );
        type Count = fn(&EnvironmentUsage) -> Option<i64>;
        let per_environment: [(LimitName, i64, i64, Count); 3] = [
            (
                LimitName::MaxSegmentOverrides,
                before.max_segment_overrides,
                after.max_segment_overrides,
                |e| Some(e.segment_overrides),
            ),
            (
                LimitName::MaxIdentityOverrides,
                before.max_identity_overrides,
                after.max_identity_overrides,
                |e| Some(e.identity_overrides),
            ),
            (
                LimitName::MaxDocumentBytes,
                before.max_document_bytes,
                after.max_document_bytes,
                |e| e.document_bytes,
            ),
        ];
        for (limit, old, new, count) in per_environment {
            if new >= old {
                continue;
            }
            let over: Vec<(&EnvironmentUsage, i64)> = self
                .environments
                .iter()
                .filter_map(|e| count(e).filter(|&n| n > new).map(|n| (e, n)))
                .collect();
            if let Some(used) = over.iter().map(|(_, n)| *n).max() {
                out.push(BelowUse {
                    limit,
                    max: new,
                    used,
                    environments: over.iter().map(|(e, _)| e.name.clone()).collect(),
                });
            }
        }
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(name: &str, overrides: i64, bytes: Option<i64>) -> EnvironmentUsage {
        EnvironmentUsage {
            environment_id: 1,
            name: name.into(),
            api_key: "k".into(),
            revision: 1,
            segment_overrides: overrides,
            identity_overrides: 0,
            published_revision: bytes.map(|_| 1),
            document_bytes: bytes,
            compressed_bytes: bytes,
            built_at: None,
            build_ms: None,
        }
    }

    fn usage() -> ProjectUsage {
        ProjectUsage {
            project: 1,
            limits: Limits::default(),
            features: 10,
            segments: 2,
            largest_segment_conditions: 4,
            deepest_segment_rules: 2,
            environments: vec![
                environment("Development", 3, Some(5_000)),
                environment("Production", 8, Some(9_000)),
                environment("Unpublished", 0, None),
            ],
        }
    }

    #[test]
    fn lowering_below_use_names_the_limit_and_the_environments() {
        let before = Limits::default();
        let after = Limits {
            max_features: 9,
            max_segment_overrides: 5,
            max_document_bytes: 6_000,
            ..before
        };
        let below = usage().lowered_below_use(&before, &after);
        let names: Vec<_> = below.iter().map(|b| b.limit).collect();
        assert_eq!(
            names,
            [
                LimitName::MaxFeatures,
                LimitName::MaxSegmentOverrides,
                LimitName::MaxDocumentBytes
            ]
        );
        assert_eq!(below[1].environments, ["Production"]);
        assert_eq!(below[1].used, 8);
        assert_eq!(below[2].environments, ["Production"]);
        assert!(below[2].stops_publishing());
        assert!(below[2].describe().contains("Production"));
        assert!(below[2].describe().contains("stop publishing"));
        assert!(!below[0].stops_publishing());
    }

    #[test]
    fn lowering_to_exactly_what_is_used_or_raising_is_allowed() {
        let before = Limits::default();
        let exact = Limits {
            max_features: 10,
            max_segments: 2,
            max_conditions_per_segment: 4,
            max_rule_depth: 2,
            max_segment_overrides: 8,
            max_document_bytes: 9_000,
            ..before
        };
        assert_eq!(usage().lowered_below_use(&before, &exact), []);
        // Already over (lowered earlier with force): changing nothing, or raising, is allowed.
        let over = Limits {
            max_features: 5,
            ..before
        };
        assert_eq!(usage().lowered_below_use(&over, &over), []);
        let raised = Limits {
            max_features: 7,
            ..before
        };
        assert_eq!(usage().lowered_below_use(&over, &raised), []);
    }
}
