//! A full scenario against real processes of every role logging JSON at debug level: a
//! `flagstone serve`, a standalone `worker` and an `edge` on one database, their secrets given
//! every way an operator can (flags, a `--config` file, a database URL with a password on
//! PostgreSQL, an SMTP URL with a password, a metrics token): sign-up and login with a
//! password, the admin key, an environment key in headers and paths, an identity with a trait
//! (on serve and on the edge), metrics scraped with the token, a publish. Every line is JSON
//! without ANSI codes, publishes are logged inside a span naming their environment and task, and
//! no key, token, password or trait value appears anywhere in any process's output.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flagstone_store::testing::test_store;
use serde_json::{json, Value};

mod common;
use common::{call, child_url, free_port, http, wait_live, Proc};

const ADMIN_KEY: &str = "log-secrets-admin-key-ADMINKEY42";
const PASSWORD: &str = "correct-horse-PASSWORD-staple-42";
const TRAIT_VALUE: &str = "trait-value-TRAITSECRET-99";
const EDGE_TRAIT_VALUE: &str = "edge-trait-EDGETRAITSECRET-77";
const METRICS_TOKEN: &str = "metrics-token-METRICSSECRET-5";
const SMTP_PASSWORD: &str = "SMTPPASSWORDSECRET";
const DB_PASSWORD: &str = "DBPASSWORDSECRET";

/// A `flagstone` process logging JSON at debug level, its output read as it comes (so the
/// pipes never fill) and returned by the handle once it ends.
fn spawn_logged(args: &[String]) -> (Proc, JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flagstone"))
        .arg("--log-format")
        .arg("json")
        .args(args)
        .env(
            "RUST_LOG",
            "debug,sqlx=debug,hyper=info,h2=info,tokio=info,runtime=info",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start flagstone");
    let mut stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s + &out.join().unwrap()
    });
    (Proc(child), reader)
}

/// The URL with a password in it: on PostgreSQL (which the test cluster accepts without
/// checking it); a SQLite URL has no password.
fn with_password(url: &str) -> String {
    match url.strip_prefix("postgres://postgres@") {
        Some(rest) => format!("postgres://postgres:{DB_PASSWORD}@{rest}"),
        None => url.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scenario_logs_no_secret() {
    let t = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let url = with_password(&child_url(&t));
    let (port, edge_port, worker_port) = (free_port(), free_port(), free_port());
    // The secrets of the metrics listener and of mail come from a configuration file.
    let config = dir.path().join("flagstone.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_token = \"{METRICS_TOKEN}\"\n\
             [serve]\n\
             public_url = \"http://127.0.0.1:{port}\"\n\
             smtp_url = \"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:1\"\n\
             smtp_from = \"Flags <flags@example.com>\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let cache = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let (proc, serve_log) = spawn_logged(&s(&[
        "serve",
        "--config",
        &config,
        "--database-url",
        &url,
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--admin-key",
        ADMIN_KEY,
        "--edge-cache-dir",
        &cache("serve-cache"),
    ]));
    wait_live("serve", port, Duration::from_secs(30)).await;
    // The other roles start once serve has migrated the database.
    let (edge, edge_log) = spawn_logged(&s(&[
        "edge",
        "--config",
        &config,
        "--database-url",
        &url,
        "--bind",
        &format!("127.0.0.1:{edge_port}"),
        "--edge-cache-dir",
        &cache("edge-cache"),
        "--edge-poll-ms",
        "100",
    ]));
    let (worker, worker_log) = spawn_logged(&s(&[
        "worker",
        "--config",
        &config,
        "--database-url",
        &url,
        "--metrics-addr",
        &format!("127.0.0.1:{worker_port}"),
    ]));
    wait_live("edge", edge_port, Duration::from_secs(30)).await;
    wait_live("worker", worker_port, Duration::from_secs(30)).await;

    let admin = format!("Api-Key {ADMIN_KEY}");
    let admin = [("Authorization", admin.as_str())];
    // The first user signs up with a password and logs in.
    let signed = call(
        port,
        "POST",
        "/api/v1/auth/users/",
        &[],
        json!({"email": "ada@example.com", "password": PASSWORD, "organisation_name": "Acme"}),
    )
    .await;
    let signup_token = signed["key"].as_str().unwrap().to_string();
    let login = call(
        port,
        "POST",
        "/api/v1/auth/login/",
        &[],
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    let token = login["key"].as_str().unwrap().to_string();
    // A wrong password too (failures are logged, the password must not be).
    let _ = http(
        port,
        "POST",
        "/api/v1/auth/login/",
        &[],
        Some(&json!({"email": "ada@example.com", "password": format!("{PASSWORD}-wrong")})),
    )
    .await;
    let user = format!("Token {token}");
    let orgs = call(
        port,
        "GET",
        "/api/v1/organisations/",
        &[("Authorization", &user)],
        Value::Null,
    )
    .await;
    let org = orgs["results"][0]["id"].clone();
    let project = call(
        port,
        "POST",
        "/api/v1/projects/",
        &admin,
        json!({"name": "Web", "organisation": org}),
    )
    .await;
    let env = call(
        port,
        "POST",
        "/api/v1/environments/",
        &admin,
        json!({"name": "Production", "project": project["id"]}),
    )
    .await;
    let key = env["api_key"].as_str().unwrap().to_string();
    call(
        port,
        "POST",
        &format!("/api/v1/projects/{}/features/", project["id"]),
        &admin,
        json!({"name": "checkout", "initial_value": "on", "default_enabled": true}),
    )
    .await;
    let _ = http(
        port,
        "GET",
        &format!("/api/v1/environments/{key}/"),
        &admin,
        None,
    )
    .await;
    let sdk = [("X-Environment-Key", key.as_str())];
    let start = Instant::now();
    loop {
        if let Some((200, body)) = http(port, "GET", "/api/v1/flags/", &sdk, None).await {
            if body.contains("checkout") {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    call(
        port,
        "POST",
        "/api/v1/identities/",
        &sdk,
        json!({"identifier": "user-1", "traits": [{"trait_key": "plan", "trait_value": TRAIT_VALUE}]}),
    )
    .await;
    let _ = http(
        port,
        "GET",
        "/api/v1/identities/?identifier=user-1",
        &sdk,
        None,
    )
    .await;
    let _ = http(
        port,
        "GET",
        &format!("/sse/environments/{key}/stream/x"),
        &[],
        None,
    )
    .await;
    // A scheduled change, applied by one of the task processors a moment later.
    let states = call(
        port,
        "GET",
        &format!("/api/v1/environments/{key}/featurestates/"),
        &admin,
        Value::Null,
    )
    .await;
    let state_id = states["results"][0]["id"]
        .as_i64()
        .expect("a feature state");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    call(
        port,
        "PATCH",
        &format!("/api/v1/environments/{key}/featurestates/{state_id}/"),
        &admin,
        json!({"enabled": false,
               "live_from": flagstone_store::clock::iso8601(now_ms + 1_000)}),
    )
    .await;
    let start = Instant::now();
    loop {
        let applied = call(
            port,
            "GET",
            &format!("/api/v1/environments/{key}/scheduled-changes/?state=applied"),
            &admin,
            Value::Null,
        )
        .await;
        if applied["count"].as_i64() == Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the scheduled change was never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The edge serves the same environment (following the publish) and takes a trait too.
    let start = Instant::now();
    loop {
        if let Some((200, body)) = http(edge_port, "GET", "/api/v1/flags/", &sdk, None).await {
            if body.contains("checkout") {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the edge never served it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    call(
        edge_port,
        "POST",
        "/api/v1/identities/",
        &sdk,
        json!({"identifier": "user-2", "traits": [{"trait_key": "plan", "trait_value": EDGE_TRAIT_VALUE}]}),
    )
    .await;
    // Metrics scraped with the token from the file, on every role; a wrong token refused.
    let bearer = format!("Bearer {METRICS_TOKEN}");
    for p in [port, edge_port, worker_port] {
        let (status, _) = http(p, "GET", "/metrics", &[("Authorization", &bearer)], None)
            .await
            .unwrap();
        assert_eq!(status, 200);
        let wrong = [("Authorization", "Bearer METRICSSECRET-guess")];
        let (status, _) = http(p, "GET", "/metrics", &wrong, None).await.unwrap();
        assert_eq!(status, 401);
    }
    drop(proc);
    drop(edge);
    drop(worker);
    let logs = serve_log.join().unwrap() + &edge_log.join().unwrap() + &worker_log.join().unwrap();

    // The file's SMTP settings were read (the line names the server, not the password).
    assert!(
        logs.contains("invitations are mailed"),
        "the SMTP settings from the file were not used:\n{logs}"
    );
    let mut publish_lines = 0;
    let mut scheduled_lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        // stdout also prints nothing secret but is not JSON: only stderr lines are checked.
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if v["span"]["name"] == "publish" {
                assert!(v["span"]["environment"].is_number(), "{line}");
                assert!(v["span"]["task"].is_number(), "{line}");
                publish_lines += 1;
            }
            if v["span"]["name"] == "scheduled_change" {
                assert!(v["span"]["environment"].is_number(), "{line}");
                assert!(v["span"]["task"].is_number(), "{line}");
                scheduled_lines += 1;
            }
        }
        assert!(
            !line.contains('\u{1b}'),
            "ANSI codes in a log that is not a terminal: {line}"
        );
    }
    assert!(
        publish_lines > 0,
        "no publish was logged in its span:\n{logs}"
    );
    assert!(
        scheduled_lines > 0,
        "no scheduled change was logged in its span:\n{logs}"
    );
    let json_lines = logs
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count();
    assert!(json_lines > 20, "JSON logs expected:\n{logs}");
    for (what, secret) in [
        ("the admin key", ADMIN_KEY),
        ("a password", PASSWORD),
        ("a trait value", TRAIT_VALUE),
        ("a trait value sent to the edge", EDGE_TRAIT_VALUE),
        ("the metrics token", METRICS_TOKEN),
        ("a guessed metrics token", "METRICSSECRET-guess"),
        ("the SMTP password", SMTP_PASSWORD),
        ("the database password", DB_PASSWORD),
        ("an environment key", key.as_str()),
        ("an API token", token.as_str()),
        ("a sign-up token", signup_token.as_str()),
    ] {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            panic!("{what} was logged: {line}");
        }
    }
}
