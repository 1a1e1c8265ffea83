//! `flagstone bench permissions`: what checking permissions costs an admin request. The admin
//! router runs in-process (no sockets, so only the handler path is measured) over a fresh store
//! holding one organisation, project and environment of 50 features. The same
//! `GET /api/v1/environments/{key}/featurestates/` is sent, interleaved in rounds, with the
//! installation key (a superuser: no grants to load, the check passes at once) and with a
//! user's API token (token lookup, loading the user's grants, resolving the environment to its
//! project and organisation, `Grants::check`). Then the parts are timed alone: resolving the
//! environment, loading a user's grants, and the pure `Grants::check`. And one sign-in
//! (Argon2id at the default cost) for scale.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use flagstone_access::{
    CallerKind, EnvironmentPermission, EnvironmentRef, Grant, Grants, Membership, Need, Role, Set,
};
use flagstone_api::AppState;
use flagstone_store::accounts::{grants, members, users};
use flagstone_store::{keys, scopes, Actor};
use serde_json::{json, Value};
use tower::Service;

use super::open_target;

const ADMIN_KEY: &str = "bench-permissions-admin-key-0123";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a-bench-password-123";

#[derive(clap::Args, Debug)]
pub struct PermissionsArgs {
    /// `postgres://…` to measure on PostgreSQL (a fresh schema is created); default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Requests per caller.
    #[arg(long, default_value_t = 4_000)]
    pub requests: usize,
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut b = Request::builder().method(method).uri(path);
    if !auth.is_empty() {
        b = b.header("authorization", auth);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    // A Router is always ready and never fails (errors are responses).
    let mut svc = app.clone();
    let resp = <Router as Service<Request<Body>>>::call(&mut svc, b.body(body)?).await?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, v))
}

pub(super) async fn ok(
    app: &Router,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (s, v) = send(app, method.clone(), path, auth, body).await?;
    if !(200..300).contains(&s) {
        bail!("{method} {path}: {s} {v}");
    }
    Ok(v)
}

pub(super) fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

pub(super) fn pct(mut xs: Vec<Duration>, p: f64) -> Duration {
    xs.sort();
    xs[((xs.len() as f64 * p) as usize).min(xs.len() - 1)]
}

pub(super) fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

pub async fn run(args: PermissionsArgs) -> anyhow::Result<()> {
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    println!(
        "backend: {:?}; {} requests per caller",
        store.backend(),
        args.requests
    );
    keys::ensure_admin_key(&store, Some(ADMIN_KEY)).await?;
    let state = AppState::new(store.clone());
    let app = flagstone_api::router(state.clone());
    let key = format!("Api-Key {ADMIN_KEY}");

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
    let env = ok(
        &app,
        Method::POST,
        "/api/v1/environments",
        &key,
        Some(json!({"name": "prod", "project": project})),
    )
    .await?;
    let api_key = env["api_key"].as_str().context("api_key")?.to_string();
    for i in 0..50 {
        ok(
            &app,
            Method::POST,
            &format!("/api/v1/projects/{project}/features"),
            &key,
            Some(json!({"name": format!("feature_{i}")})),
        )
        .await?;
    }

    // A user: the organisation's ADMIN (the check passes through membership, the common case
    // for a dashboard user).
    let user = {
        let hash = flagstone_access::password::hash(PASSWORD, state.auth.passwords.cost());
        let mut tx = store.write().await?;
        let u = users::create(
            &mut tx,
            &users::NewUser {
                email: EMAIL.into(),
                first_name: String::new(),
                last_name: String::new(),
                password_hash: Some(hash),
                is_superuser: false,
            },
            flagstone_store::now_ms(),
        )
        .await?;
        tx.commit().await?;
        let mut ch = store.change(&Actor::system("bench")).await?;
        members::add(
            &mut ch,
            org,
            u.id,
            EMAIL,
            "ADMIN",
            flagstone_store::now_ms(),
        )
        .await?;
        ch.commit().await?;
        u.id
    };
    let mut logins = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = ok(
            &app,
            Method::POST,
            "/api/v1/auth/login",
            "",
            Some(json!({"email": EMAIL, "password": PASSWORD})),
        )
        .await?;
        logins.push(t.elapsed());
        token = v["key"].as_str().context("token")?.to_string();
    }
    let token = format!("Token {token}");

    let path = format!("/api/v1/environments/{api_key}/featurestates?page_size=50");
    for auth in [&key, &token] {
        for _ in 0..200 {
            ok(&app, Method::GET, &path, auth, None).await?;
        }
    }
    let rounds = 20;
    let per_round = (args.requests / rounds).max(1);
    let (mut by_key, mut by_user) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (auth, into) in [(&key, &mut by_key), (&token, &mut by_user)] {
            for _ in 0..per_round {
                let t = Instant::now();
                ok(&app, Method::GET, &path, auth, None).await?;
                into.push(t.elapsed());
            }
        }
    }

    // The parts alone.
    let n = 2_000;
    let mut resolve = Vec::with_capacity(n);
    let mut load = Vec::with_capacity(n);
    let mut at = None;
    for _ in 0..n {
        let t = Instant::now();
        let mut tx = store.read().await?;
        at = Some(scopes::environment_by_key(&mut tx, &api_key).await?);
        drop(tx);
        resolve.push(t.elapsed());
        let t = Instant::now();
        let mut tx = store.read().await?;
        std::hint::black_box(grants::of_user(&mut tx, user, false).await?);
        drop(tx);
        load.push(t.elapsed());
    }
    let at = at.context("environment")?;
    let check_ns = time_checks(at);

    let (mk, mu) = (median(by_key.clone()), median(by_user.clone()));
    println!(
        "GET featurestates (50), installation key: median {}, p90 {}",
        us(mk),
        us(pct(by_key, 0.9))
    );
    println!(
        "GET featurestates (50), user token (org ADMIN): median {}, p90 {}",
        us(mu),
        us(pct(by_user, 0.9))
    );
    println!(
        "difference (token lookup + loading grants): {}",
        us(mu.saturating_sub(mk))
    );
    println!(
        "resolve environment key -> ids (own read transaction): median {}",
        us(median(resolve))
    );
    println!(
        "load a user's grants (own read transaction): median {}",
        us(median(load))
    );
    println!(
        "Grants::check: {:.0} ns (org ADMIN), {:.0} ns (USER with a grant in one of 1,000 environments)",
        check_ns.0, check_ns.1
    );
    println!(
        "sign-in (Argon2id, default cost): median {:.1} ms",
        median(logins).as_secs_f64() * 1e3
    );
    store.close().await;
    drop(target);
    Ok(())
}

/// Nanoseconds per `Grants::check`, for an organisation admin and for a `USER` whose grant is
/// one of 1,000.
fn time_checks(at: EnvironmentRef) -> (f64, f64) {
    let mut admin = Grants::nothing(CallerKind::User { user_id: 1 });
    admin.organisations.insert(
        at.organisation,
        Membership {
            role: Role::Admin,
            permissions: Set::empty(),
        },
    );
    let mut user = Grants::nothing(CallerKind::User { user_id: 2 });
    user.organisations.insert(
        at.organisation,
        Membership {
            role: Role::User,
            permissions: Set::empty(),
        },
    );
    for i in 0..1_000 {
        let e = EnvironmentRef {
            environment: at.environment + i,
            ..at
        };
        user.environments.insert(
            e.environment,
            (
                e,
                Grant {
                    admin: false,
                    permissions: [EnvironmentPermission::ViewEnvironment]
                        .into_iter()
                        .collect(),
                },
            ),
        );
    }
    let need = Need::Environment(at, EnvironmentPermission::ViewEnvironment);
    let per = |g: &Grants| {
        let n = 1_000_000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(std::hint::black_box(g).check(std::hint::black_box(need)));
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    (per(&admin), per(&user))
}
