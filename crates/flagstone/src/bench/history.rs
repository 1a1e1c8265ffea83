//! `flagstone bench history`: what versions of features' configurations cost. On the incident's
//! environment (100 features, 400 segments, 5,000 segment overrides: about 50 overrides per
//! feature), it makes `--changes` changes through the store's versioned write paths — half
//! environment-default values, half segment-override values, spread over every feature — then
//! prints the bytes stored per version (the deflated configuration, and the whole table with
//! its index and row overhead where the backend reports it), the time per change, the
//! environment document's size for comparison, and what a year of 1,000 changes a day costs.

use std::time::Instant;

use anyhow::Context;

use flagstone_store::document::{self, fixture, BuildOptions};
use flagstone_store::features::{states, FeatureStatePatch};
use flagstone_store::segments::overrides::{self, OverrideFilter, SegmentOverridePatch};
use flagstone_store::{environments, history, Actor, PageRequest};
use serde_json::json;

use super::open_target;

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// `postgres://…` to measure on PostgreSQL (a fresh schema is created); default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Changes to make (each records one version; the first change of each feature also
    /// records its baseline).
    #[arg(long, default_value_t = 2_000)]
    pub changes: usize,
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<()> {
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    println!("backend: {:?}", store.backend());
    let fx = fixture::create(&store, fixture::Shape::INCIDENT).await?;
    let doc = document::build(&store, fx.environment_id, &BuildOptions::default()).await?;
    println!(
        "incident environment: {:?}; its document: {} bytes ({} gzipped)",
        fixture::Shape::INCIDENT,
        doc.bytes,
        doc.body.len()
    );

    // Every feature's override ids, to change one per odd step.
    let mut tx = store.read().await?;
    let env = environments::get(&mut tx, fx.environment_id).await?;
    let mut by_feature: Vec<(i64, i64, Vec<i64>)> = Vec::new();
    for &state_id in &fx.feature_state_ids {
        let feature = states::get(&mut tx, env.id, state_id).await?.feature;
        let filter = OverrideFilter {
            feature: Some(feature),
            segment: None,
        };
        let ids = overrides::list(&mut tx, &env.api_key, filter, PageRequest::new(1, 1000))
            .await?
            .results
            .into_iter()
            .map(|o| o.id)
            .collect();
        by_feature.push((feature, state_id, ids));
    }
    drop(tx);

    let actor = Actor::system("bench");
    let start = Instant::now();
    for n in 0..args.changes {
        let (_, state_id, ids) = &by_feature[n % by_feature.len()];
        let mut ch = store.change(&actor).await?;
        if n % 2 == 0 || ids.is_empty() {
            let patch = FeatureStatePatch {
                feature_state_value: Some(json!(format!("value-{n}"))),
                ..FeatureStatePatch::default()
            };
            states::update(&mut ch, &env, *state_id, &patch).await?;
        } else {
            let patch = SegmentOverridePatch {
                feature_state_value: Some(Some(json!(format!("override-{n}")))),
                ..SegmentOverridePatch::default()
            };
            overrides::update(&mut ch, &env.api_key, ids[(n / 2) % ids.len()], &patch).await?;
        }
        ch.commit().await?;
    }
    let took = start.elapsed();

    let mut tx = store.read().await?;
    let f = history::storage(&mut tx, env.id).await?;
    drop(tx);
    let per_config = f.config_bytes as f64 / f.versions.max(1) as f64;
    let raw = {
        let mut tx = store.read().await?;
        let c = history::current(&mut tx, env.id, by_feature[0].0)
            .await?
            .context("the fixture's first feature has a state")?;
        (
            serde_json::to_vec(&c)?.len(),
            c.encode().len(),
            c.segment_overrides.len(),
        )
    };
    println!(
        "{} changes in {took:.2?} ({:.2} ms per change, each with its version)",
        args.changes,
        took.as_secs_f64() * 1000.0 / args.changes.max(1) as f64
    );
    println!(
        "versions: {} ({} baselines); stored configurations: {} bytes, {per_config:.0} bytes per version",
        f.versions,
        f.versions - args.changes as i64,
        f.config_bytes
    );
    println!(
        "one feature's configuration ({} overrides): {} bytes as the API's JSON, {} stored",
        raw.2, raw.0, raw.1
    );
    let per_row = match f.table_bytes {
        Some(t) => {
            let per = t as f64 / f.table_versions.max(1) as f64;
            println!(
                "table with index and row overhead: {t} bytes for {} versions, {per:.0} bytes per version",
                f.table_versions
            );
            per
        }
        None => {
            println!("table size: not reported by this backend (configurations only below)");
            per_config
        }
    };
    let year = 365_000.0 * per_row;
    println!(
        "a year of 1,000 changes a day (365,000 versions): {:.0} MB ({:.0} MB of configurations)",
        year / 1e6,
        365_000.0 * per_config / 1e6
    );
    println!(
        "a copy of the document would be {} bytes per change; a version is {:.2}% of that",
        doc.bytes,
        100.0 * per_row / doc.bytes.max(1) as f64
    );
    store.close().await;
    Ok(())
}
