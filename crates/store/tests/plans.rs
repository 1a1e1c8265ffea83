//! Every admin and SDK read path uses an index for what it filters and orders by, so its cost
//! does not grow with the installation (issue 14).
//!
//! Each case below calls the store's own functions against a populated installation; the SQL
//! they execute is captured from sqlx's statement log (target `sqlx::query`), so a query added
//! to one of these functions is checked without touching this file. Each captured `SELECT` is
//! then explained:
//!
//! - PostgreSQL: prepared and explained as a **generic plan** (`plan_cache_mode =
//!   force_generic_plan`, what pooled connections switch to after five executions) with
//!   `enable_seqscan`, `enable_mergejoin` and `enable_hashjoin` off, after `ANALYZE`. The test
//!   installation is small, and on small tables walking everything is the cheap plan; switching
//!   those off asks instead whether an index-driven plan exists (joins then have to look rows
//!   up by index). A scan of a table without an index condition — a `Seq Scan`, or an index
//!   walked end to end (`Index Scan` with no `Index Cond`, which is how `($2 IS NULL OR …)
//!   ORDER BY id LIMIT` walks the primary key) — fails the case.
//! - SQLite: `EXPLAIN QUERY PLAN`; any `SCAN <table>` (with or without `USING INDEX`: a full
//!   index walk is still a scan) fails the case.
//!
//! A case may name tables it is allowed to scan, with the reason (e.g. a list of *all*
//! organisations reads them all). New admin or SDK read functions get a line in `cases`.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use flagstone_access::Visibility;
use flagstone_store::audit::{self, AuditFilter};
use flagstone_store::document::{self, fixture};
use flagstone_store::environments::{self, NewEnvironment};
use flagstone_store::features::{self, FeatureFilter};
use flagstone_store::identities::{self, overrides, traits, NewIdentity};
use flagstone_store::segments::overrides::OverrideFilter;
use flagstone_store::testing::test_store;
use flagstone_store::{
    accounts, evaluations, history, keys, organisations, projects, queue, scheduled, segments, sql,
    tags, webhooks, Actor, Backend, PageRequest, Store,
};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

/// The statements sqlx executed while capturing (`None`: not capturing).
static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Records the SQL of every statement sqlx logs (`summary` holds short statements whole,
/// `db.statement` longer ones).
struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        #[derive(Default)]
        struct Fields {
            summary: String,
            statement: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                match field.name() {
                    "summary" => self.summary = value.to_string(),
                    "db.statement" => self.statement = value.to_string(),
                    _ => {}
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.record_str(field, &format!("{value:?}"));
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let sql = if f.statement.trim().is_empty() {
            f.summary
        } else {
            f.statement.trim().to_string()
        };
        if let Some(v) = CAPTURED.lock().unwrap().as_mut() {
            v.push(sql);
        }
    }
}

fn install_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(
            Capture.with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sqlx::query", tracing::Level::TRACE),
            ),
        );
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
}

use tracing_subscriber::Layer as _;

fn start_capture() {
    *CAPTURED.lock().unwrap() = Some(Vec::new());
}

/// The `SELECT`s captured since [`start_capture`] (transaction control and writes are not
/// read paths).
fn take_captured() -> Vec<String> {
    let all = CAPTURED.lock().unwrap().take().unwrap_or_default();
    let mut seen = BTreeSet::new();
    all.into_iter()
        .filter(|s| {
            let head = s.trim_start().to_ascii_uppercase();
            head.starts_with("SELECT") || head.starts_with("WITH")
        })
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// One read path: its name, the statements it ran, the tables it may scan and why.
struct Case {
    name: &'static str,
    statements: Vec<String>,
    may_scan: &'static [&'static str],
}

/// Runs `$call` (an expression awaiting a store function) and records what it executed.
macro_rules! case {
    ($cases:ident, $name:expr, $call:expr) => {
        case!($cases, $name, [], $call)
    };
    ($cases:ident, $name:expr, [$($table:expr),*], $call:expr) => {{
        start_capture();
        let r = $call;
        let statements = take_captured();
        if let Err(e) = &r {
            panic!("{}: {e:?}", $name);
        }
        assert!(!statements.is_empty(), "{}: no statement captured", $name);
        $cases.push(Case {
            name: $name,
            statements,
            may_scan: &[$($table),*],
        });
    }};
}

/// The installation the cases read: `PROJECTS` organisations of one project each, every
/// project with 20 features, segments with overrides and `ENVIRONMENTS_PER_PROJECT`
/// environments (each with its 20 states); identities with traits and overrides, server keys
/// and webhooks in several environments; members; audit entries. Spread over projects and
/// environments like a real installation, so that PostgreSQL's statistics see filters on them
/// as selective (one project holding everything makes a walk of the whole table look right).
const PROJECTS: usize = 8;
const ENVIRONMENTS_PER_PROJECT: usize = 20;

struct Installation {
    organisation: i64,
    project: i64,
    environment: i64,
    api_key: String,
    feature: i64,
    segment: i64,
    identity: i64,
}

async fn populate(store: &Store) -> Installation {
    let actor = Actor::system("plans");
    let mut first = None;
    for p in 0..PROJECTS {
        let fx = fixture::create(
            store,
            fixture::Shape {
                features: 20,
                mv_features: 2,
                segments: 10,
                overrides: 20,
            },
        )
        .await
        .unwrap();
        let mut ch = store.change(&actor).await.unwrap();
        for i in 0..ENVIRONMENTS_PER_PROJECT {
            let new: NewEnvironment = serde_json::from_value(
                json!({"name": format!("env {i}"), "project": fx.project_id}),
            )
            .unwrap();
            let env = environments::create(&mut ch, &new).await.unwrap();
            if i % 4 == 0 {
                keys::create_server_key(&mut ch, env.id, fx.project_id, "server")
                    .await
                    .unwrap();
                webhooks::create(
                    &mut ch,
                    webhooks::Scope::Environment(env.id),
                    &serde_json::from_value(json!({"url": "https://example.com/hook"})).unwrap(),
                )
                .await
                .unwrap();
            }
        }
        let user = accounts::users::create(
            ch.tx(),
            &accounts::users::NewUser {
                email: format!("member-{p}@example.com"),
                first_name: "M".into(),
                last_name: "Ember".into(),
                password_hash: None,
                is_superuser: false,
            },
            flagstone_store::now_ms(),
        )
        .await
        .unwrap();
        accounts::members::add(
            &mut ch,
            fx.organisation_id,
            user.id,
            &user.email,
            "USER",
            flagstone_store::now_ms(),
        )
        .await
        .unwrap();
        ch.commit().await.unwrap();
        let identity = people(store, &actor, fx.environment_id, fx.project_id).await;
        if first.is_none() {
            first = Some((fx, identity));
        }
    }
    let (fx, identity) = first.unwrap();

    let mut tx = store.read().await.unwrap();
    let feature = features::list(
        &mut tx,
        fx.project_id,
        &FeatureFilter::default(),
        PageRequest::default(),
    )
    .await
    .unwrap()
    .results[0]
        .id;
    let segment = segments::list(&mut tx, fx.project_id, PageRequest::default())
        .await
        .unwrap()
        .results[0]
        .id;
    drop(tx);

    let mut tx = store.write().await.unwrap();
    let now = flagstone_store::now_ms();
    evaluations::record(
        &mut tx,
        &[evaluations::UsageDelta {
            environment_id: fx.environment_id,
            feature_id: feature,
            hour: evaluations::hour_of(now),
            reported: 3,
            served: 4,
            at: now,
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    if store.backend() == Backend::Postgres {
        let mut tx = store.write().await.unwrap();
        // This schema's tables only: a bare ANALYZE would lock every test schema in the
        // database.
        sql!(&mut tx, |c| {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut *c)
            .await
            .unwrap();
            for t in tables {
                sqlx::query(&format!("ANALYZE \"{t}\""))
                    .execute(&mut *c)
                    .await
                    .unwrap();
            }
        });
        tx.commit().await.unwrap();
    }
    Installation {
        organisation: fx.organisation_id,
        project: fx.project_id,
        environment: fx.environment_id,
        api_key: fx.api_key,
        feature,
        segment,
        identity,
    }
}

/// 30 identities of environment `env` with a trait each, every third with an override;
/// returns the last identity's id.
async fn people(store: &Store, actor: &Actor, env: i64, project: i64) -> i64 {
    let mut tx = store.read().await.unwrap();
    let environment = environments::get(&mut tx, env).await.unwrap();
    let feature = features::list(
        &mut tx,
        project,
        &FeatureFilter::default(),
        PageRequest::default(),
    )
    .await
    .unwrap()
    .results[0]
        .id;
    drop(tx);
    let mut ch = store.change(actor).await.unwrap();
    let mut last = 0;
    for i in 0..30 {
        let id = identities::create(
            &mut ch,
            &environment,
            &NewIdentity {
                identifier: format!("user-{i}"),
            },
        )
        .await
        .unwrap();
        traits::set(
            &mut ch,
            &environment,
            &id,
            &[traits::TraitInput {
                trait_key: "plan".into(),
                trait_value: json!(if i % 2 == 0 { "beta" } else { "free" }),
            }],
        )
        .await
        .unwrap();
        if i % 3 == 0 {
            overrides::create(
                &mut ch,
                &environment,
                &id,
                &serde_json::from_value(json!({"feature": feature, "enabled": true})).unwrap(),
            )
            .await
            .unwrap();
        }
        last = id.id;
    }
    ch.commit().await.unwrap();
    last
}

/// Calls each admin and SDK read path once and returns what it executed.
async fn cases(store: &Store, at: &Installation) -> Vec<Case> {
    let page = PageRequest::new(1, 20);
    let (org, project, env, feature, segment, identity) = (
        at.organisation,
        at.project,
        at.environment,
        at.feature,
        at.segment,
        at.identity,
    );
    let some = Visibility {
        everything: false,
        organisations: vec![],
        projects: vec![project],
        environments: vec![],
    };
    let mut tx = store.read().await.unwrap();
    let tx = &mut tx;
    let mut c = Vec::new();

    // Admin: environments and their feature states (the query).
    case!(
        c,
        "environment by key",
        environments::get_by_key(tx, &at.api_key).await
    );
    case!(
        c,
        "environments of a project",
        environments::list(tx, Some(project), page).await
    );
    case!(
        c,
        "environments of a project, visible",
        environments::list_visible(tx, Some(project), &some, page).await
    );
    case!(
        c,
        "feature states of an environment",
        features::states::list(tx, env, None, page).await
    );
    case!(
        c,
        "feature states of an environment, one feature",
        features::states::list(tx, env, Some(feature), page).await
    );
    // Projects and organisations.
    case!(c, "project", projects::get(tx, project).await);
    case!(
        c,
        "projects of an organisation",
        projects::list(tx, Some(org), page).await
    );
    case!(
        c,
        "projects, visible",
        projects::list_visible(tx, None, &some, page).await
    );
    case!(c, "organisation", organisations::get(tx, org).await);
    // Features and segments.
    case!(c, "feature", features::get(tx, project, feature).await);
    case!(
        c,
        "features of a project",
        features::list(tx, project, &FeatureFilter::default(), page).await
    );
    case!(
        c,
        "features of a project, archived only",
        features::list(
            tx,
            project,
            &FeatureFilter {
                is_archived: Some(true),
                ..FeatureFilter::default()
            },
            page
        )
        .await
    );
    case!(c, "segment", segments::get(tx, project, segment).await);
    case!(
        c,
        "segments of a project",
        segments::list(tx, project, page).await
    );
    case!(
        c,
        "segment versions",
        segments::versions::list(tx, project, segment, page).await
    );
    case!(
        c,
        "segment overrides of an environment",
        segments::overrides::list(tx, &at.api_key, OverrideFilter::default(), page).await
    );
    case!(
        c,
        "segment overrides of a feature",
        segments::overrides::list(
            tx,
            &at.api_key,
            OverrideFilter {
                feature: Some(feature),
                segment: None
            },
            page
        )
        .await
    );
    case!(
        c,
        "segment overrides of a segment",
        segments::overrides::list(
            tx,
            &at.api_key,
            OverrideFilter {
                feature: None,
                segment: Some(segment)
            },
            page
        )
        .await
    );
    case!(
        c,
        "multivariate options",
        features::options::list(tx, project, feature, page).await
    );
    case!(c, "tags of a project", tags::list(tx, project, page).await);
    case!(
        c,
        "feature history",
        history::list(tx, env, feature, page).await
    );
    // Identities (admin).
    case!(
        c,
        "identities of an environment",
        identities::list(tx, env, None, page).await
    );
    case!(
        c,
        "identities by prefix",
        identities::list(tx, env, Some("user-1"), page).await
    );
    case!(c, "identity", identities::get(tx, env, identity).await);
    case!(
        c,
        "traits of an identity",
        traits::list(tx, identity, page).await
    );
    case!(
        c,
        "identity overrides",
        overrides::list(tx, identity, page).await
    );
    // Audit, scheduled changes, change requests, queue.
    case!(
        c,
        "audit log of a project",
        audit::list(tx, Some(project), page).await
    );
    case!(
        c,
        "audit log of an environment",
        audit::search(
            tx,
            &AuditFilter {
                environment: Some(env),
                ..AuditFilter::default()
            },
            page
        )
        .await
    );
    case!(
        c,
        "scheduled changes of an environment",
        scheduled::list(tx, env, None, page).await
    );
    case!(
        c,
        "pending scheduled changes",
        scheduled::list(tx, env, Some(scheduled::ScheduledState::Pending), page).await
    );
    case!(
        c,
        "change requests of an environment",
        flagstone_store::change_requests::list(tx, env, Default::default(), page).await
    );
    case!(
        c,
        "change requests assigned to a user",
        flagstone_store::change_requests::list(
            tx,
            env,
            flagstone_store::change_requests::ListFilter {
                committed: Some(false),
                assignee: Some(1),
            },
            page
        )
        .await
    );
    case!(
        c,
        "every state of an environment",
        flagstone_store::features::environment_states::list(tx, env, Default::default(), page)
            .await
    );
    case!(
        c,
        "every state of one feature of an environment",
        flagstone_store::features::environment_states::list(
            tx,
            env,
            flagstone_store::features::environment_states::StateFilter {
                feature: Some(feature),
                feature_segment: None,
            },
            page
        )
        .await
    );
    case!(c, "publish job", queue::get_job(tx, env).await);
    case!(
        c,
        "publish log of an environment",
        queue::publish_log(tx, Some(env), 20).await
    );
    case!(
        c,
        "webhooks of an environment",
        webhooks::list(tx, webhooks::Scope::Environment(env)).await
    );
    case!(
        c,
        "server keys of an environment",
        keys::list_server_keys(tx, env).await
    );
    case!(
        c,
        "flag usage of a feature",
        evaluations::daily(tx, env, feature, 0).await
    );
    case!(
        c,
        "members of an organisation",
        accounts::members::list(tx, org).await
    );
    // SDK paths: keys, identities, documents.
    case!(
        c,
        "server key lookup",
        keys::find_server_key(tx, "ser.not-a-key").await
    );
    case!(
        c,
        "identify",
        identities::sdk::load_identity(tx, env, "user-7").await
    );
    case!(
        c,
        "published document",
        document::stored::load(tx, env).await
    );
    case!(
        c,
        "identity overrides streamed",
        document::identity_overrides::stream(tx, env, |_| async { true }).await
    );
    c
}

/// A table read end to end by `plan`, if any.
fn scans(backend: Backend, plan: &[String]) -> Vec<String> {
    match backend {
        Backend::Sqlite => plan
            .iter()
            .filter_map(|l| l.trim().strip_prefix("SCAN "))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter(|t| !t.starts_with('(') && *t != "CONSTANT")
            .map(str::to_string)
            .collect(),
        Backend::Postgres => {
            // Text format: a node line (`->  Index Scan using i on t  (cost=…)`) followed by
            // its properties (`Index Cond: …`, `Filter: …`) until the next node line.
            let mut out = Vec::new();
            let mut current: Option<(String, bool)> = None;
            let flush = |c: &mut Option<(String, bool)>, out: &mut Vec<String>| {
                if let Some((table, has_cond)) = c.take() {
                    if !has_cond {
                        out.push(table);
                    }
                }
            };
            for line in plan {
                let l = line.trim().trim_start_matches("->").trim();
                if l.contains("(cost=") {
                    flush(&mut current, &mut out);
                    let node = l.split("  (cost=").next().unwrap_or(l);
                    let scan = node.starts_with("Seq Scan on ")
                        || node.starts_with("Index Scan")
                        || node.starts_with("Index Only Scan");
                    if scan {
                        let table = node
                            .rsplit(" on ")
                            .next()
                            .and_then(|t| t.split_whitespace().next())
                            .unwrap_or("")
                            .to_string();
                        current = Some((table, false));
                    }
                } else if l.starts_with("Index Cond:") {
                    if let Some((_, has)) = current.as_mut() {
                        *has = true;
                    }
                }
            }
            flush(&mut current, &mut out);
            out
        }
    }
}

/// How many `$n` placeholders `sql` uses (the highest `n`).
fn parameters(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    for (i, ch) in b.iter().enumerate() {
        if *ch == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
        }
    }
    max
}

async fn explain(store: &Store, sql: &str) -> Vec<String> {
    let n = parameters(sql);
    let mut tx = store.write().await.unwrap();
    let explain_sqlite = format!("EXPLAIN QUERY PLAN {sql}");
    let prepare = format!("PREPARE plan_check AS {sql}");
    let execute = if n == 0 {
        "EXPLAIN EXECUTE plan_check".to_string()
    } else {
        format!("EXPLAIN EXECUTE plan_check({})", vec!["NULL"; n].join(", "))
    };
    let plan: Vec<String> = match store.backend() {
        Backend::Sqlite => sql!(&mut tx, |c| {
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain_sqlite);
            for _ in 0..n {
                q = q.bind(None::<i64>);
            }
            q.fetch_all(c)
                .await
                .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
                .into_iter()
                .map(|r| r.3)
                .collect()
        }),
        Backend::Postgres => sql!(&mut tx, |c| {
            for s in [
                "SET LOCAL enable_seqscan = off",
                "SET LOCAL enable_mergejoin = off",
                "SET LOCAL enable_hashjoin = off",
                "SET LOCAL plan_cache_mode = force_generic_plan",
            ] {
                sqlx::query(s).execute(&mut *c).await.unwrap();
            }
            sqlx::raw_sql(&prepare)
                .execute(&mut *c)
                .await
                .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
            let plan = sqlx::query_scalar::<_, String>(&execute)
                .fetch_all(&mut *c)
                .await
                .unwrap_or_else(|e| panic!("explain {sql}: {e}"));
            // Prepared statements outlive the transaction.
            sqlx::raw_sql("DEALLOCATE plan_check")
                .execute(&mut *c)
                .await
                .unwrap();
            plan
        }),
    };
    // Rolled back: the PREPARE and settings go with it.
    drop(tx);
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_and_sdk_read_path_uses_an_index() {
    install_capture();
    let t = test_store().await;
    let at = populate(&t.store).await;
    let cases = cases(&t.store, &at).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &cases {
        for sql in &case.statements {
            let plan = explain(&t.store, sql).await;
            checked += 1;
            if std::env::var_os("FLAGSTONE_PLANS_VERBOSE").is_some() {
                eprintln!("{}:\n  {sql}\n  {}\n", case.name, plan.join("\n  "));
            }
            let bad: Vec<String> = scans(t.store.backend(), &plan)
                .into_iter()
                .filter(|t| !case.may_scan.contains(&t.as_str()))
                .collect();
            if !bad.is_empty() {
                failures.push(format!(
                    "{}: scans {bad:?}\n  {sql}\n  {}",
                    case.name,
                    plan.join("\n  ")
                ));
            }
        }
    }
    assert!(checked >= cases.len(), "every case ran a statement");
    assert!(
        failures.is_empty(),
        "{} of {checked} statements scan a table:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
