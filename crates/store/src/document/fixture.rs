//! Synthetic environments for tests and benchmarks of the publishing pipeline, shaped like the
//! July 2023 incident (features, segments with several conditions, many segment overrides).
//! Rows are inserted directly, in a few large [`Change`]s that bump the revision like any admin
//! change; [`change_feature`] is one small admin change, for bursts.

use serde_json::json;

use crate::environments::{self, NewEnvironment};
use crate::organisations::{self, NewOrganisation};
use crate::projects::{self, NewProject};
use crate::{clock::now_ms, sql, Actor, AuditEntry, Change, Result, Store};

/// How big an environment to make.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub features: usize,
    /// The first `mv_features` features are multivariate with two options each.
    pub mv_features: usize,
    pub segments: usize,
    /// Segment `i` gets `3 + i % 3` conditions (3 to 5).
    pub overrides: usize,
}

impl Shape {
    /// The environment of the incident: 100 features, 400 segments, 5,000 segment overrides.
    pub const INCIDENT: Shape = Shape {
        features: 100,
        mv_features: 10,
        segments: 400,
        overrides: 5_000,
    };

    pub fn times(self, k: usize) -> Shape {
        Shape {
            features: self.features,
            mv_features: self.mv_features,
            segments: self.segments * k,
            overrides: self.overrides * k,
        }
    }
}

/// What [`create`] made.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub organisation_id: i64,
    pub project_id: i64,
    pub environment_id: i64,
    pub api_key: String,
    /// Environment feature state ids, one per feature, in feature order.
    pub feature_state_ids: Vec<i64>,
}

fn actor() -> Actor {
    Actor::system("fixture")
}

fn rules(i: usize) -> String {
    let conditions: Vec<_> = (0..3 + i % 3)
        .map(|c| {
            json!({"operator": "EQUAL", "property": format!("trait_{c}"), "value": format!("value-{i}-{c}")})
        })
        .collect();
    json!([{"type": "ALL", "rules": [{"type": "ANY", "rules": [], "conditions": conditions}], "conditions": []}])
        .to_string()
}

/// Creates an organisation, a project (limits raised to fit `shape`) and an environment.
pub async fn create(store: &Store, shape: Shape) -> Result<Fixture> {
    let now = now_ms();
    let mut ch = store.change(&actor()).await?;
    let org = organisations::create(
        &mut ch,
        &serde_json::from_value::<NewOrganisation>(json!({"name": "Incident Org"}))
            .expect("valid organisation"),
    )
    .await?;
    let project = projects::create(
        &mut ch,
        &serde_json::from_value::<NewProject>(json!({
            "name": format!("Incident {}", uuid::Uuid::new_v4().simple()),
            "organisation": org.id,
            "limits": {
                "max_features": shape.features.max(1),
                "max_segments": shape.segments.max(1),
                "max_segment_overrides": shape.overrides.max(1),
            },
        }))
        .expect("valid project"),
    )
    .await?;
    let env = environments::create(
        &mut ch,
        &serde_json::from_value::<NewEnvironment>(
            json!({"name": "Production", "project": project.id}),
        )
        .expect("valid environment"),
    )
    .await?;
    ch.commit().await?;

    let mut ch = store.change(&actor()).await?;
    let mut feature_ids = Vec::with_capacity(shape.features);
    let mut feature_state_ids = Vec::with_capacity(shape.features);
    for f in 0..shape.features {
        let mv = f < shape.mv_features;
        let fid: i64 = sql!(ch.tx(), |c| {
            sqlx::query_scalar(
                "INSERT INTO features (project_id, name, type, initial_value, default_enabled, \
                     created_at) VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id",
            )
            .bind(project.id)
            .bind(format!("feature_{f:04}"))
            .bind(if mv { "MULTIVARIATE" } else { "STANDARD" })
            .bind(json!(format!("control-{f}")).to_string())
            .bind(now)
            .fetch_one(c)
            .await?
        });
        let mut allocations = Vec::new();
        if mv {
            for (k, pct) in [("a", 30.0), ("b", 20.0)] {
                let oid: i64 = sql!(ch.tx(), |c| {
                    sqlx::query_scalar(
                        "INSERT INTO mv_options (feature_id, value, \
                             default_percentage_allocation, key, uuid) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(fid)
                    .bind(json!(format!("variant-{k}")).to_string())
                    .bind(pct)
                    .bind(k)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .fetch_one(c)
                    .await?
                });
                if k == "a" {
                    allocations.push(
                        json!({"multivariate_feature_option": oid, "percentage_allocation": 40.0}),
                    );
                }
            }
        }
        let sid: i64 = sql!(ch.tx(), |c| {
            sqlx::query_scalar(
                "INSERT INTO feature_states (feature_id, environment_id, enabled, value, \
                     mv_allocations, uuid, updated_at) VALUES ($1, $2, TRUE, $3, $4, $5, $6) \
                 RETURNING id",
            )
            .bind(fid)
            .bind(env.id)
            .bind(json!(format!("control-{f}")).to_string())
            .bind(serde_json::Value::Array(allocations).to_string())
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(now)
            .fetch_one(c)
            .await?
        });
        feature_ids.push(fid);
        feature_state_ids.push(sid);
    }
    let mut segment_ids = Vec::with_capacity(shape.segments);
    for s in 0..shape.segments {
        let id: i64 = sql!(ch.tx(), |c| {
            sqlx::query_scalar(
                "INSERT INTO segments (project_id, name, rules, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(project.id)
            .bind(format!("segment_{s:05}"))
            .bind(rules(s))
            .bind(now)
            .fetch_one(c)
            .await?
        });
        segment_ids.push(id);
    }
    // Spread overrides over segments; each (segment, feature) pair at most once.
    if !segment_ids.is_empty() && !feature_ids.is_empty() {
        let per_segment = shape.overrides.div_ceil(segment_ids.len());
        let mut made = 0;
        'outer: for (s, seg) in segment_ids.iter().enumerate() {
            for j in 0..per_segment.min(feature_ids.len()) {
                if made == shape.overrides {
                    break 'outer;
                }
                let f = (s + j) % feature_ids.len();
                sql!(ch.tx(), |c| {
                    sqlx::query(
                        "INSERT INTO segment_overrides (feature_id, segment_id, environment_id, \
                             priority, enabled, value, mv_allocations, uuid, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, '[]', $7, $8)",
                    )
                    .bind(feature_ids[f])
                    .bind(seg)
                    .bind(env.id)
                    .bind(s as i64)
                    .bind(j % 2 == 0)
                    .bind(json!(format!("override-{s}-{j}")).to_string())
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(now)
                    .execute(c)
                    .await?
                    .rows_affected()
                });
                made += 1;
            }
        }
    }
    ch.touch_environment(env.id);
    ch.commit().await?;
    Ok(Fixture {
        organisation_id: org.id,
        project_id: project.id,
        environment_id: env.id,
        api_key: env.api_key,
        feature_state_ids,
    })
}

/// An admin API key of `fx`'s organisation named `name`, its secret starting with `prefix`:
/// what an operator creates for edges that follow an upstream. Returns the secret.
pub async fn organisation_admin_key(
    store: &Store,
    fx: &Fixture,
    prefix: &str,
    name: &str,
) -> Result<String> {
    let s = flagstone_access::secrets::new_secret(prefix);
    let mut ch = store.change(&actor()).await?;
    crate::accounts::api_keys::create(
        &mut ch,
        fx.organisation_id,
        &crate::accounts::api_keys::NewApiKey {
            name,
            is_admin: true,
            expires_at: None,
            created_by: None,
            prefix: &s.lookup,
            secret_hash: &s.hash,
        },
        now_ms(),
    )
    .await?;
    ch.commit().await?;
    Ok(s.secret)
}

/// One admin change: sets the value of feature state `n % features` to `value`, with its
/// audit entry, revision bump and publish request. Returns the new revision.
/// One change to every environment of the fixture's project at once: the description of its
/// first feature (part of every environment's published SDK fields), as editing a feature or a
/// segment does. Returns the project's environments and the revision each was bumped to.
pub async fn change_project(store: &Store, fx: &Fixture, value: &str) -> Result<Vec<(i64, i64)>> {
    let mut ch: Change = store.change(&actor()).await?;
    let state = fx.feature_state_ids[0];
    sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE features SET description = $2 \
             WHERE id = (SELECT feature_id FROM feature_states WHERE id = $1)",
        )
        .bind(state)
        .bind(value)
        .execute(c)
        .await?
        .rows_affected()
    });
    ch.touch_project(fx.project_id);
    let committed = ch.commit().await?;
    Ok(committed.revisions)
}

/// One small admin change in `environment_id` (of the fixture's project): the value of its
/// state of the fixture's first feature. Returns the environment's new revision.
pub async fn change_environment(
    store: &Store,
    fx: &Fixture,
    environment_id: i64,
    value: &str,
) -> Result<i64> {
    let mut ch: Change = store.change(&actor()).await?;
    sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE feature_states SET value = $3, updated_at = $4 \
             WHERE environment_id = $1 \
               AND feature_id = (SELECT feature_id FROM feature_states WHERE id = $2)",
        )
        .bind(environment_id)
        .bind(fx.feature_state_ids[0])
        .bind(json!(value).to_string())
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    ch.touch_environment(environment_id);
    Ok(first_revision(ch.commit().await?))
}

pub async fn change_feature(store: &Store, fx: &Fixture, n: usize, value: &str) -> Result<i64> {
    let mut ch: Change = store.change(&actor()).await?;
    let state = fx.feature_state_ids[n % fx.feature_state_ids.len()];
    sql!(ch.tx(), |c| {
        sqlx::query("UPDATE feature_states SET value = $2, updated_at = $3 WHERE id = $1")
            .bind(state)
            .bind(json!(value).to_string())
            .bind(now_ms())
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.touch_environment(fx.environment_id);
    ch.audit(AuditEntry {
        project_id: Some(fx.project_id),
        environment_id: Some(fx.environment_id),
        action: "updated",
        resource_type: "feature_state",
        resource_id: state.to_string(),
        log: format!("Feature state {state} set to {value}"),
        before: None,
        after: Some(json!({ "feature_state_value": value })),
    });
    Ok(first_revision(ch.commit().await?))
}

/// The new revision of the (one) environment a committed change touched.
fn first_revision(committed: crate::change::Committed) -> i64 {
    committed
        .revisions
        .first()
        .map(|(_, r)| *r)
        .unwrap_or_default()
}
