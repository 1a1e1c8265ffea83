//! Checks a whole document against the target project's limits and turns it into a [`Plan`]:
//! validated, normalised rows in the order the import writes them. Pure — no database — so a
//! bad document is refused before anything is written, with the JSON path of the problem
//! (`project.segments[3].rules[0].conditions[1].value`).

use std::collections::{HashMap, HashSet};

use flagstone_engine::{
    DocumentSegmentRule, EnvironmentDocument, FeatureState, MultivariateFeatureStateValue,
};
use serde_json::{json, Value};

use crate::organisations::validate_name;
use crate::segments::rules::parse_rules;
use crate::values::validate_flag_value;
use crate::{identities::validate_identifier, LimitName, Limits, Result, StoreError};

pub(crate) struct Plan {
    pub features: Vec<PlanFeature>,
    /// Environment defaults, at most one per feature.
    pub states: Vec<PlanState>,
    pub segments: Vec<PlanSegment>,
    pub identities: Vec<PlanIdentity>,
    pub warnings: Vec<String>,
}

pub(crate) struct PlanFeature {
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
    pub django_id: Option<i64>,
    pub uuid: Option<String>,
    pub enabled: bool,
    pub value: Value,
    /// (index into the feature's options, percentage).
    pub allocations: Vec<(usize, f64)>,
}

pub(crate) struct PlanSegment {
    pub doc_id: i64,
    pub name: String,
    /// Admin-shaped rules, validated (the `segments.rules` column).
    pub rules: String,
    pub has_split: bool,
    /// (dense priority within the feature, state).
    pub overrides: Vec<(i64, PlanState)>,
}

pub(crate) struct PlanIdentity {
    pub identifier: String,
    /// (feature index, enabled, value, uuid).
    pub overrides: Vec<(usize, bool, Value, Option<String>)>,
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
fn at(path: &str) -> impl Fn(StoreError) -> StoreError + '_ {
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

fn has_split(rules: &[DocumentSegmentRule]) -> bool {
    rules.iter().any(|r| {
        r.conditions
            .iter()
            .any(|c| c.operator == flagstone_engine::Operator::PercentageSplit)
            || has_split(&r.rules)
    })
}

struct Builder<'a> {
    limits: &'a Limits,
    features: Vec<PlanFeature>,
    by_id: HashMap<i64, usize>,
    names: HashMap<String, i64>,
    warnings: Vec<String>,
}

impl Builder<'_> {
    /// The plan index of a state's feature, registering it on first sight.
    fn feature(&mut self, path: &str, fs: &FeatureState) -> Result<usize> {
        let f = &fs.feature;
        let name = validate_name("name", &f.name).map_err(at(&format!("{path}.feature")))?;
        if let Some(&i) = self.by_id.get(&f.id) {
            if self.features[i].name != name {
                return Err(StoreError::invalid(
                    format!("{path}.feature.name"),
                    format!(
                        "feature {} is called {:?} elsewhere in the document",
                        f.id, self.features[i].name
                    ),
                ));
            }
            return Ok(i);
        }
        let kind = match f.feature_type.as_str() {
            "STANDARD" => "STANDARD",
            "MULTIVARIATE" => "MULTIVARIATE",
            other => {
                return Err(StoreError::invalid(
                    format!("{path}.feature.type"),
                    format!("unknown feature type {other:?}; expected STANDARD or MULTIVARIATE"),
                ))
            }
        };
        if let Some(other) = self.names.insert(name.to_lowercase(), f.id) {
            return Err(StoreError::conflict(
                format!("{path}.feature.name"),
                format!(
                    "features {other} and {} are both called {name:?} (names ignore case)",
                    f.id
                ),
            ));
        }
        self.features.push(PlanFeature {
            doc_id: f.id,
            name,
            kind,
            server_key_only: false,
            options: Vec::new(),
        });
        self.by_id.insert(f.id, self.features.len() - 1);
        Ok(self.features.len() - 1)
    }

    /// The index of a multivariate value's option within its feature, registering it.
    fn option(
        &mut self,
        path: &str,
        feature: usize,
        mv: &MultivariateFeatureStateValue,
        pct: f64,
    ) -> Result<usize> {
        let o = &mv.multivariate_feature_option;
        validate_flag_value(
            &format!("{path}.multivariate_feature_option.value"),
            &o.value,
            self.limits,
        )?;
        let opts = &mut self.features[feature].options;
        let found = opts.iter().position(|p| match (o.id, p.doc_id) {
            (Some(a), Some(b)) => a == b,
            _ => match (&o.key, &p.key) {
                (Some(a), Some(b)) => a == b,
                _ => p.value == o.value,
            },
        });
        Ok(match found {
            Some(i) => i,
            None => {
                opts.push(PlanOption {
                    doc_id: o.id,
                    value: o.value.clone(),
                    key: o.key.clone(),
                    default_allocation: pct,
                });
                opts.len() - 1
            }
        })
    }

    fn state(&mut self, path: &str, fs: &FeatureState) -> Result<PlanState> {
        let feature = self.feature(path, fs)?;
        validate_flag_value(
            &format!("{path}.feature_state_value"),
            &fs.feature_state_value,
            self.limits,
        )?;
        let mut allocations = Vec::new();
        let mut total = 0.0;
        for (k, mv) in fs.multivariate_feature_state_values.iter().enumerate() {
            let mpath = format!("{path}.multivariate_feature_state_values[{k}]");
            let pct = mv.percentage_allocation.as_f64().unwrap_or(f64::NAN);
            if !(0.0..=100.0).contains(&pct) {
                return Err(StoreError::invalid(
                    format!("{mpath}.percentage_allocation"),
                    "must be between 0 and 100",
                ));
            }
            total += pct;
            let option = self.option(&mpath, feature, mv, pct)?;
            if allocations.iter().any(|(o, _)| *o == option) {
                return Err(StoreError::invalid(
                    format!("{mpath}.multivariate_feature_option"),
                    "the option is listed twice in this feature state",
                ));
            }
            allocations.push((option, pct));
        }
        if total > 100.0 + 1e-9 {
            return Err(StoreError::invalid(
                format!("{path}.multivariate_feature_state_values"),
                format!("allocations sum to {total}, more than 100"),
            ));
        }
        // Variants are walked in value-id order; Flagstone walks them in option-id order.
        // They agree when value ids and option ids sort the options alike.
        if !fs.multivariate_feature_state_values.is_empty() {
            let name = &self.features[feature].name;
            let keyed = fs.django_id.is_some_and(|d| d != 0);
            if !keyed {
                self.warnings.push(format!(
                    "{path} (feature {name:?}): django_id is {}, so Flagsmith bucketed on the \
                     featurestate_uuid; Flagstone buckets on its row id, so variant assignment \
                     of this feature changes",
                    fs.django_id.map_or("null".to_string(), |d| d.to_string())
                ));
            }
            if !variant_order_kept(&fs.multivariate_feature_state_values) {
                self.warnings.push(format!(
                    "{path} (feature {name:?}): the variants' value ids order them differently \
                     from their option ids; variant assignment of this feature changes"
                ));
            }
        }
        Ok(PlanState {
            feature,
            django_id: fs.django_id.filter(|d| *d > 0),
            uuid: fs.featurestate_uuid.clone(),
            enabled: fs.enabled,
            value: fs.feature_state_value.clone(),
            allocations,
        })
    }
}

/// True when sorting the variants by value id (Flagsmith) and by option id (Flagstone's export)
/// gives the same sequence.
fn variant_order_kept(mvs: &[MultivariateFeatureStateValue]) -> bool {
    let mut by_value: Vec<_> = mvs.iter().collect();
    by_value.sort_by_key(|m| m.id.unwrap_or(i64::MAX));
    let options: Vec<Option<i64>> = by_value
        .iter()
        .map(|m| m.multivariate_feature_option.id)
        .collect();
    mvs.iter().all(|m| m.id.is_some())
        && options.iter().all(Option::is_some)
        && options.windows(2).all(|w| w[0] < w[1])
}

/// Validates `doc` against `limits` and normalises it.
pub(crate) fn plan(doc: &EnvironmentDocument, limits: &Limits) -> Result<Plan> {
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
            has_split: has_split(&seg.rules),
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

    let mut identities = Vec::new();
    let mut identifiers = HashSet::new();
    for (i, io) in doc.identity_overrides.iter().enumerate() {
        let path = format!("identity_overrides[{i}]");
        validate_identifier(&io.identifier).map_err(at(&path))?;
        if !identifiers.insert(io.identifier.as_str()) {
            return Err(StoreError::invalid(
                format!("{path}.identifier"),
                format!("identity {:?} appears twice", io.identifier),
            ));
        }
        let mut overrides: Vec<(usize, bool, Value, Option<String>)> = Vec::new();
        for (k, fs) in io.identity_features.iter().enumerate() {
            let fpath = format!("{path}.identity_features[{k}]");
            let feature = b.feature(&fpath, fs)?;
            validate_flag_value(
                &format!("{fpath}.feature_state_value"),
                &fs.feature_state_value,
                limits,
            )?;
            if overrides.iter().any(|(f, ..)| *f == feature) {
                return Err(StoreError::invalid(
                    format!("{fpath}.feature"),
                    "the identity overrides this feature twice",
                ));
            }
            overrides.push((
                feature,
                fs.enabled,
                fs.feature_state_value.clone(),
                fs.featurestate_uuid.clone(),
            ));
        }
        identities.push(PlanIdentity {
            identifier: io.identifier.clone(),
            overrides,
        });
    }

    let server_only: HashSet<i64> = doc
        .project
        .server_key_only_feature_ids
        .iter()
        .copied()
        .collect();
    for f in &mut b.features {
        f.server_key_only = server_only.contains(&f.doc_id);
    }

    let plan = Plan {
        features: b.features,
        states,
        segments,
        identities,
        warnings: b.warnings,
    };
    check_counts(&plan, limits)?;
    Ok(plan)
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
    let n: i64 = plan
        .identities
        .iter()
        .map(|i| i.overrides.len() as i64)
        .sum();
    Limits::check(
        LimitName::MaxIdentityOverrides,
        limits.max_identity_overrides,
        n,
        || format!("the document has {n} identity overrides"),
    )
}
