//! The incident replayed through the admin API: the environment is created with HTTP requests
//! (organisation, project, environment, features with their MV options, segments, segment
//! overrides), then the burst of changes is a stream of PATCHes to feature states and segment
//! overrides from a few concurrent keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::http::Client;

/// The seeded environment, as the admin API named it.
#[derive(Clone, Debug)]
pub struct Seeded {
    pub environment_id: i64,
    pub api_key: String,
    /// The environment's feature states (one per feature).
    pub state_ids: Vec<i64>,
    pub override_ids: Vec<i64>,
    pub requests: usize,
    /// Requests answered with a 5xx and sent again.
    pub retries: usize,
}

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub features: usize,
    pub mv_features: usize,
    pub segments: usize,
    pub overrides: usize,
}

pub const INCIDENT: Shape = Shape {
    features: 100,
    mv_features: 10,
    segments: 400,
    overrides: 5_000,
};

/// Segment `i`'s rules: 3 to 5 conditions of mixed operators, in an ALL rule holding an ANY.
fn rules(i: usize) -> Value {
    let conditions: Vec<Value> = (0..3 + i % 3)
        .map(|c| match (i + c) % 7 {
            0 => json!({"operator": "EQUAL", "property": format!("plan_{c}"), "value": format!("tier-{i}")}),
            1 => json!({"operator": "GREATER_THAN", "property": "age", "value": (i % 90).to_string()}),
            2 => json!({"operator": "IN", "property": "country", "value": "gb,fr,de,es,it"}),
            3 => json!({"operator": "CONTAINS", "property": "email", "value": format!("@corp{i}.")}),
            4 => json!({"operator": "REGEX", "property": "version", "value": "^4\\.[0-9]+$"}),
            5 => json!({"operator": "PERCENTAGE_SPLIT", "property": "", "value": ((i % 100) as f64 / 2.0).to_string()}),
            _ => json!({"operator": "NOT_EQUAL", "property": "beta", "value": "false"}),
        })
        .collect();
    json!([{"type": "ALL", "rules": [{"type": "ANY", "rules": [], "conditions": conditions}], "conditions": []}])
}

/// One request: method, path, JSON body.
type Request = (&'static str, String, Value);

/// Sends `jobs` requests (`make(job)` builds each) over `clients` keep-alive connections, each
/// connection taking every `clients`-th job in turn. Returns the answers in job order and when
/// the last answer arrived. 5xx answers that were retried are added to `retries`.
async fn fan_out<F>(
    addr: SocketAddr,
    key: &str,
    clients: usize,
    jobs: usize,
    retries: &mut usize,
    make: F,
) -> anyhow::Result<(Vec<Value>, Instant)>
where
    F: Fn(usize) -> Request + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let clients = clients.max(1);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (make, key) = (make.clone(), key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(addr, &key);
            let mut out = Vec::new();
            let mut last = Instant::now();
            for job in (c..jobs).step_by(clients) {
                let (method, path, body) = make(job);
                out.push((job, client.json(method, &path, Some(&body)).await?));
                last = Instant::now();
            }
            anyhow::Ok((out, last, client.retries))
        }));
    }
    let mut all = vec![Value::Null; jobs];
    let mut last = Instant::now();
    let mut first = true;
    for t in tasks {
        let (out, l, r) = t.await??;
        *retries += r;
        if first || l > last {
            last = l;
            first = false;
        }
        for (job, v) in out {
            all[job] = v;
        }
    }
    Ok((all, last))
}

fn id(v: &Value) -> anyhow::Result<i64> {
    v["id"].as_i64().with_context(|| format!("no id in {v}"))
}

/// Creates the environment through the admin API.
pub async fn seed(
    addr: SocketAddr,
    key: &str,
    shape: Shape,
    clients: usize,
) -> anyhow::Result<Seeded> {
    let mut retries = 0;
    let mut c = Client::new(addr, key);
    let org = c
        .json(
            "POST",
            "/api/v1/organisations/",
            Some(&json!({"name": "Incident Org"})),
        )
        .await?;
    let project = c
        .json(
            "POST",
            "/api/v1/projects/",
            Some(&json!({"name": "Incident", "organisation": id(&org)?})),
        )
        .await?;
    let project_id = id(&project)?;
    let env = c
        .json(
            "POST",
            "/api/v1/environments/",
            Some(&json!({"name": "Production", "project": project_id})),
        )
        .await?;
    let api_key = env["api_key"].as_str().context("no api_key")?.to_string();
    let environment_id = id(&env)?;

    let (features, _) = fan_out(addr, key, clients, shape.features, &mut retries, move |f| {
        let mut body = json!({
            "name": format!("feature_{f:04}"),
            "initial_value": format!("control-{f}"),
            "default_enabled": true,
        });
        if f < shape.mv_features {
            body["multivariate_options"] = json!([
                {"value": "variant-a", "key": "a", "default_percentage_allocation": 30.0},
                {"value": "variant-b", "key": "b", "default_percentage_allocation": 20.0},
            ]);
        }
        (
            "POST",
            format!("/api/v1/projects/{project_id}/features/"),
            body,
        )
    })
    .await?;
    let feature_ids: Vec<i64> = features.iter().map(id).collect::<anyhow::Result<_>>()?;

    let (segments, _) = fan_out(addr, key, clients, shape.segments, &mut retries, move |s| {
        let body = json!({"name": format!("segment_{s:05}"), "rules": rules(s)});
        (
            "POST",
            format!("/api/v1/projects/{project_id}/segments/"),
            body,
        )
    })
    .await?;
    let segment_ids: Vec<i64> = segments.iter().map(id).collect::<anyhow::Result<_>>()?;

    // The fixture's spread: segment s overrides features s, s+1, … (at most once per pair).
    let per_segment = shape.overrides.div_ceil(shape.segments.max(1));
    let pairs: Arc<Vec<(i64, i64, usize)>> = Arc::new(
        segment_ids
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| {
                let feature_ids = &feature_ids;
                (0..per_segment.min(feature_ids.len()))
                    .map(move |j| (*seg, feature_ids[(s + j) % feature_ids.len()], s * 1000 + j))
            })
            .take(shape.overrides)
            .collect(),
    );
    let overrides = {
        let (pairs, api_key) = (pairs.clone(), api_key.clone());
        fan_out(addr, key, clients, pairs.len(), &mut retries, move |n| {
            let (segment, feature, tag) = pairs[n];
            let body = json!({
                "segment": segment,
                "enabled": n % 2 == 0,
                "feature_state_value": format!("override-{tag}"),
            });
            let path = format!(
                "/api/v1/environments/{api_key}/features/{feature}/create-segment-override/"
            );
            ("POST", path, body)
        })
        .await?
        .0
    };
    let override_ids: Vec<i64> = overrides.iter().map(id).collect::<anyhow::Result<_>>()?;

    let states = c
        .json(
            "GET",
            &format!("/api/v1/environments/{api_key}/featurestates/?page_size=1000"),
            None,
        )
        .await?;
    let mut state_ids: Vec<i64> = states["results"]
        .as_array()
        .context("no results")?
        .iter()
        .map(id)
        .collect::<anyhow::Result<_>>()?;
    state_ids.sort_unstable();
    Ok(Seeded {
        environment_id,
        api_key,
        state_ids,
        override_ids,
        requests: 5 + shape.features + shape.segments + pairs.len(),
        retries: retries + c.retries,
    })
}

/// Fires `changes` PATCHes (alternately a feature state's and a segment override's value) from
/// `clients` connections as fast as the API answers. Returns when the last response arrived and
/// how many 5xx answers were retried.
pub async fn burst(
    addr: SocketAddr,
    key: &str,
    seeded: &Seeded,
    changes: usize,
    clients: usize,
) -> anyhow::Result<(Instant, usize)> {
    let s = seeded.clone();
    let mut retries = 0;
    let (_, last) = fan_out(addr, key, clients, changes, &mut retries, move |n| {
        let body = json!({"feature_state_value": format!("burst-{n}")});
        if n % 2 == 0 {
            let state = s.state_ids[(n / 2) % s.state_ids.len()];
            let path = format!("/api/v1/environments/{}/featurestates/{state}/", s.api_key);
            ("PATCH", path, body)
        } else {
            let o = s.override_ids[(n / 2 * 37) % s.override_ids.len()];
            let path = format!("/api/v1/environments/{}/segment-overrides/{o}/", s.api_key);
            ("PATCH", path, body)
        }
    })
    .await?;
    Ok((last, retries))
}
