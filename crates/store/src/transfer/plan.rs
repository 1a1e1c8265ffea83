//! Checks a whole document against the target project's limits and turns it into a [`Plan`]:
//! validated, normalised rows in the order the import writes them. Pure — no database — so a
//! bad document is refused before anything is written, with the JSON path of the problem
//! (`project.segments[3].rules[0].conditions[1].value`). Identity overrides, which may be
//! millions, are fed one at a time ([`begin`], [`Planner::identity`], [`Planner::finish`]): the
//! plan keeps their counts, not them.

use std::collections::{HashMap, HashSet};

use flagstone_engine::{DocumentSegmentRule, EnvironmentDocument, IdentityOverride};
use serde_json::{json, Value};

use super::identities::{self, PlanIdentity, Seen};
use super::states::Builder;
use crate::organisations::validate_name;
use crate::segments::rules::parse_rules;
use crate::{LimitName, Limits, Result, StoreError};

pub(crate) struct Plan {
    pub features: Vec<PlanFeature>,
    /// Plan index of each feature, by its id in the document.
    pub by_id: HashMap<i64, usize>,
    /// Environment defaults, at most one per feature.
    pub states: Vec<PlanState>,
    pub segments: Vec<PlanSegment>,
    /// Identities with overrides, and their overrides: the overrides themselves are checked
    /// and written one batch at a time ([`super::identities`]), never held together.
    pub identities: usize,
    pub identity_overrides: i64,
    pub warnings: Vec<String>,
}

pub(crate) struct PlanFeature {
    /// The feature's id in the document (kept as `features.source_id`).
    pub doc_id: i64,
    pub name: String,
    pub kind: &'static str,
    pub server_key_only: bool,
    pub options: Vec<PlanOption>,
}

pub(crate) struct PlanOption {
    pub doc_id: Option<i64>,
    pub value: Value,
    pub key: Option<String>,
    /// The allocation in the environment default, used as the default of a new option.
    pub default_allocation: f64,
}

pub(crate) struct PlanState {
    /// Index into `Plan::features`.
    pub feature: usize,
    /// The document's `django_id`, as the state's hashing id: 0 when it had none (Flagsmith
    /// then hashed `featurestate_uuid`). `None` only for a state the document does not have.
    pub hash_id: Option<i64>,
    /// The document's `featurestate_uuid`, verbatim (it is hashed when `hash_id` is 0).
    pub uuid: Option<String>,
    pub enabled: bool,
    pub value: Value,
    pub allocations: Vec<PlanAllocation>,
}

/// One multivariate value of a state.
pub(crate) struct PlanAllocation {
    /// Index into the feature's options.
    pub option: usize,
    pub percentage: f64,
    /// The value's `id` and `mv_fs_value_uuid` in the document: they order the variants.
    pub value_id: Option<i64>,
    pub value_uuid: Option<String>,
}

pub(crate) struct PlanSegment {
    /// The segment's id in the document: its hashing identity (`segments.hash_id`).
    pub doc_id: i64,
    pub name: String,
    /// Admin-shaped rules, validated (the `segments.rules` column).
    pub rules: String,
    /// (dense priority within the feature, state).
    pub overrides: Vec<(i64, PlanState)>,
}

impl Plan {
    pub fn override_count(&self) -> usize {
        self.segments.iter().map(|s| s.overrides.len()).sum()
    }
}

/// Client keys as the admin API accepts them.
fn check_api_key(key: &str) -> Result<()> {
    let ok = (8..=100).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !key.starts_with("ser.");
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "api_key",
            "must be 8-100 characters of [A-Za-z0-9_.-] and must not start with 'ser.'",
        ))
    }
}

/// Prefixes the field of an `Invalid`/`Conflict` error with where it sits in the document.
pub(super) fn at(path: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Invalid { field, detail } => StoreError::Invalid {
            field: format!("{path}.{field}"),
            detail,
        },
        StoreError::Conflict { field, detail } => StoreError::Conflict {
            field: format!("{path}.{field}"),
            detail,
        },
        StoreError::LimitExceeded { limit, max, detail } => StoreError::LimitExceeded {
            limit,
            max,
            detail: format!("{path}: {detail}"),
        },
        other => other,
    }
}

/// Document rules (`property_`) to the admin shape (`property`) that `parse_rules` checks.
fn admin_rules(rules: &[DocumentSegmentRule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                json!({
                    "type": r.rule_type,
                    "rules": admin_rules(&r.rules),
                    "conditions": r.conditions.iter().map(|c| json!({
                        "operator": c.operator,
                        "property": c.property_,
                        "value": c.value,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Validates `doc` but its identity overrides against `limits` and normalises it; the
/// overrides follow through [`Planner::identity`].
pub(crate) fn begin<'a>(doc: &EnvironmentDocument, limits: &'a Limits) -> Result<Planner<'a>> {
    check_api_key(&doc.api_key)?;
    validate_name("name", &doc.name)?;
    validate_name("project.name", &doc.project.name)?;
    if let Some(o) = &doc.project.organisation {
        validate_name("project.organisation.name", &o.name)?;
    }
    let mut b = Builder {
        limits,
        features: Vec::new(),
        by_id: HashMap::new(),
        names: HashMap::new(),
        warnings: Vec::new(),
    };

    let mut states = Vec::new();
    let mut seen = HashSet::new();
    for (i, fs) in doc.feature_states.iter().enumerate() {
        let path = format!("feature_states[{i}]");
        let st = b.state(&path, fs)?;
        if !seen.insert(st.feature) {
            return Err(StoreError::invalid(
                format!("{path}.feature"),
                format!(
                    "feature {} has two environment feature states",
                    fs.feature.id
                ),
            ));
        }
        states.push(st);
    }

    let mut segments = Vec::new();
    let mut segment_ids = HashSet::new();
    let mut segment_names = HashSet::new();
    // (feature, priority, segment index, override index) → dense priorities per feature, in
    // the order the engine would pick them (ties go to the earlier segment in the document).
    let mut ranking: Vec<(usize, f64, usize, usize)> = Vec::new();
    let mut pending: Vec<Vec<PlanState>> = Vec::new();
    for (si, seg) in doc.project.segments.iter().enumerate() {
        let path = format!("project.segments[{si}]");
        if seg.id <= 0 {
            return Err(StoreError::invalid(
                format!("{path}.id"),
                "segment ids are positive (Flagsmith's are database ids)",
            ));
        }
        if !segment_ids.insert(seg.id) {
            return Err(StoreError::invalid(
                format!("{path}.id"),
                format!("segment {} appears twice", seg.id),
            ));
        }
        let mut name = validate_name("name", &seg.name).map_err(at(&path))?;
        if !segment_names.insert(name.clone()) {
            // Flagstone segment names are unique per project; Flagsmith's are not.
            let renamed = format!("{name} ({})", seg.id);
            b.warnings.push(format!(
                "{path}: a second segment is called {name:?}; imported as {renamed:?}"
            ));
            name = renamed;
            segment_names.insert(name.clone());
        }
        let rules = parse_rules(&admin_rules(&seg.rules), limits).map_err(at(&path))?;
        let mut overrides = Vec::new();
        let mut features = HashSet::new();
        for (oi, fs) in seg.feature_states.iter().enumerate() {
            let opath = format!("{path}.feature_states[{oi}]");
            let st = b.state(&opath, fs)?;
            if !features.insert(st.feature) {
                return Err(StoreError::invalid(
                    format!("{opath}.feature"),
                    "the segment overrides this feature twice",
                ));
            }
            let priority = fs
                .feature_segment
                .as_ref()
                .and_then(|s| s.priority.as_ref())
                .and_then(|p| p.as_f64())
                .unwrap_or(f64::INFINITY);
            ranking.push((st.feature, priority, si, oi));
            overrides.push(st);
        }
        pending.push(overrides);
        segments.push(PlanSegment {
            doc_id: seg.id,
            name,
            rules: serde_json::to_string(&rules).expect("rules serialize"),
            overrides: Vec::new(),
        });
    }
    ranking.sort_by(|a, b| {
        (a.0, a.1, a.2, a.3)
            .partial_cmp(&(b.0, b.1, b.2, b.3))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut dense: HashMap<(usize, usize), i64> = HashMap::new();
    let mut last_feature = usize::MAX;
    let mut next = 0;
    for (feature, _, si, oi) in ranking {
        if feature != last_feature {
            last_feature = feature;
            next = 0;
        }
        dense.insert((si, oi), next);
        next += 1;
    }
    for (si, overrides) in pending.into_iter().enumerate() {
        segments[si].overrides = overrides
            .into_iter()
            .enumerate()
            .map(|(oi, st)| (dense[&(si, oi)], st))
            .collect();
    }

    let server_only: HashSet<i64> = doc
        .project
        .server_key_only_feature_ids
        .iter()
        .copied()
        .collect();
    Ok(Planner {
        b,
        states,
        segments,
        server_only,
        seen: Seen::default(),
        identities: 0,
        identity_overrides: 0,
    })
}

/// A plan being made: everything but the identity overrides is checked; those come one by one
/// ([`Planner::identity`]) — from the document in memory, or streamed from a file.
pub(crate) struct Planner<'a> {
    b: Builder<'a>,
    states: Vec<PlanState>,
    segments: Vec<PlanSegment>,
    server_only: HashSet<i64>,
    seen: Seen,
    identities: usize,
    identity_overrides: i64,
}

impl Planner<'_> {
    /// Checks the `i`th identity override, registering the features it names. Its rows are
    /// written later, after a second read ([`Plan::identity`]).
    pub fn identity(&mut self, i: usize, io: &IdentityOverride) -> Result<()> {
        let limits = self.b.limits;
        let p = identities::check(i, io, limits, |path, fs| self.b.feature(path, fs))?;
        self.seen.insert(i, &p.identifier)?;
        self.identities += 1;
        self.identity_overrides += p.overrides.len() as i64;
        Ok(())
    }

    /// The plan, once every identity override went through [`Planner::identity`]; checks the
    /// counts against the project's limits.
    pub fn finish(self) -> Result<Plan> {
        let mut b = self.b;
        for f in &mut b.features {
            f.server_key_only = self.server_only.contains(&f.doc_id);
        }
        let plan = Plan {
            features: b.features,
            by_id: b.by_id,
            states: self.states,
            segments: self.segments,
            identities: self.identities,
            identity_overrides: self.identity_overrides,
            warnings: b.warnings,
        };
        check_counts(&plan, b.limits)?;
        Ok(plan)
    }
}

impl Plan {
    /// The `i`th identity override again, for writing: checked as [`Planner::identity`] did,
    /// its features looked up among the plan's. A feature the plan does not have means the
    /// document is not the one that was planned (its file changed between two reads).
    pub fn identity(
        &self,
        i: usize,
        io: &IdentityOverride,
        limits: &Limits,
    ) -> Result<PlanIdentity> {
        identities::check(i, io, limits, |path, fs| {
            let known = self
                .by_id
                .get(&fs.feature.id)
                .filter(|&&f| self.features[f].name == fs.feature.name.trim());
            match known {
                Some(&f) => Ok(f),
                None => Err(StoreError::invalid(
                    format!("{path}.feature"),
                    "not a feature of the document that was checked (the file changed while it was being imported)",
                )),
            }
        })
    }
}

fn check_counts(plan: &Plan, limits: &Limits) -> Result<()> {
    let n = plan.features.len() as i64;
    Limits::check(LimitName::MaxFeatures, limits.max_features, n, || {
        format!("the document has {n} features")
    })?;
    let n = plan.segments.len() as i64;
    Limits::check(LimitName::MaxSegments, limits.max_segments, n, || {
        format!("the document has {n} segments")
    })?;
    let n = plan.override_count() as i64;
    Limits::check(
        LimitName::MaxSegmentOverrides,
        limits.max_segment_overrides,
        n,
        || format!("the document has {n} segment overrides"),
    )?;
    let n = plan.identity_overrides;
    Limits::check(
        LimitName::MaxIdentityOverrides,
        limits.max_identity_overrides,
        n,
        || format!("the document has {n} identity overrides"),
    )
}
