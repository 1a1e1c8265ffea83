//! `flagstone bench webhooks`: what webhooks cost. The admin router runs in-process over a fresh
//! store with two environments of one project: one without webhooks, one with 10 pointing at a
//! local receiver (axum on 127.0.0.1:0 answering 200). The same feature-state `PATCH` is sent to
//! each, interleaved in rounds, so the added latency of queueing the events in the change's own
//! transaction shows side by side. Then the production deliverer (`flagstone_tasks::deliveries`)
//! drains every queued event to the receiver and the delivery rate is reported.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::Method;
use flagstone_api::AppState;
use flagstone_store::keys;
use flagstone_tasks::deliveries::{Deliverer, DeliveryConfig};
use flagstone_webhooks::AddressPolicy;
use serde_json::json;

use super::open_target;
use super::permissions::{median, ok, pct, us};

const ADMIN_KEY: &str = "bench-webhooks-admin-key-012345";

#[derive(clap::Args, Debug)]
pub struct WebhooksArgs {
    /// `postgres://…` to measure on PostgreSQL (a fresh schema is created); default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Admin writes per environment.
    #[arg(long, default_value_t = 300)]
    pub writes: usize,
    /// Webhooks on the second environment.
    #[arg(long, default_value_t = 10)]
    pub webhooks: usize,
    /// Deliveries in flight at once while draining.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    println!(
        "backend: {:?}; {} writes per environment; {} webhooks",
        store.backend(),
        args.writes,
        args.webhooks
    );
    keys::ensure_admin_key(&store, Some(ADMIN_KEY)).await?;
    let app = flagstone_api::router(
        AppState::new(store.clone()).with_webhook_policy(AddressPolicy::allowing_private()),
    );
    let key = format!("Api-Key {ADMIN_KEY}");

    // The receiver: counts requests, answers 200.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let org = ok(
        &app,
        Method::POST,
        "/api/v1/organisations",
        &key,
        Some(json!({"name": "Bench"})),
    )
    .await?;
    let org = org["id"].as_i64().context("organisation id")?;
    let project = ok(
        &app,
        Method::POST,
        "/api/v1/projects",
        &key,
        Some(json!({"name": "P", "organisation": org})),
    )
    .await?;
    let project = project["id"].as_i64().context("project id")?;
    let mut envs = Vec::new();
    for name in ["quiet", "hooked"] {
        let e = ok(
            &app,
            Method::POST,
            "/api/v1/environments",
            &key,
            Some(json!({"name": name, "project": project})),
        )
        .await?;
        envs.push(e["api_key"].as_str().context("api_key")?.to_string());
    }
    let feature = ok(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{project}/features"),
        &key,
        Some(json!({"name": "banner"})),
    )
    .await?;
    let feature = feature["id"].as_i64().context("feature id")?;
    let mut states = Vec::new();
    for env in &envs {
        let s = ok(
            &app,
            Method::GET,
            &format!("/api/v1/environments/{env}/featurestates?feature={feature}"),
            &key,
            None,
        )
        .await?;
        states.push(s["results"][0]["id"].as_i64().context("state id")?);
    }
    for _ in 0..args.webhooks {
        ok(
            &app,
            Method::POST,
            &format!("/api/v1/environments/{}/webhooks", envs[1]),
            &key,
            Some(json!({"url": url, "secret": "bench-secret"})),
        )
        .await?;
    }

    // Warm up, then interleave: quiet, hooked, quiet, hooked…
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..(args.writes + 20) {
        for (i, (env, state)) in envs.iter().zip(&states).enumerate() {
            let path = format!("/api/v1/environments/{env}/featurestates/{state}");
            let t = Instant::now();
            ok(
                &app,
                Method::PATCH,
                &path,
                &key,
                Some(json!({"feature_state_value": format!("v{round}")})),
            )
            .await?;
            if round >= 20 {
                times[i].push(t.elapsed());
            }
        }
    }
    let queued = args.webhooks * (args.writes + 20);
    println!("admin write (PATCH featurestate), median / p99:");
    for (name, t) in ["no webhooks", "with webhooks"].iter().zip(&times) {
        println!(
            "  {name:>14}: {} / {}",
            us(median(t.clone())),
            us(pct(t.clone(), 0.99))
        );
    }

    // Drain: the production deliverer, until the receiver has every event.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = DeliveryConfig {
        concurrency: args.concurrency,
        policy: AddressPolicy::allowing_private(),
        poll_interval: Duration::from_millis(5),
        ..DeliveryConfig::default()
    };
    let started = Instant::now();
    let mut stopped_rx = stopped.clone();
    let deliverer = tokio::spawn(Deliverer::new(store.clone(), config).run(async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    }));
    drop(stopped);
    while received.load(Ordering::Relaxed) < queued {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "only {} of {queued} events arrived",
                received.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let _ = stop.send(true);
    let _ = deliverer.await;
    println!(
        "delivered {queued} signed events to a local receiver in {:.2} s: {:.0} events/s (concurrency {}; ordered per webhook)",
        took.as_secs_f64(),
        queued as f64 / took.as_secs_f64(),
        args.concurrency
    );
    store.close().await;
    Ok(())
}
