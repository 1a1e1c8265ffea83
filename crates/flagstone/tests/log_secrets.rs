//! A full scenario against a real `flagstone serve` logging JSON at debug level: sign-up and
//! login with a password, the admin key, an environment key in headers and paths, an identity
//! with a trait, a publish. Every line is JSON without ANSI codes, publishes are logged inside a
//! span naming their environment and task, and no key, token, password or trait value appears
//! anywhere in the output.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flagstone_store::testing::test_store;
use serde_json::{json, Value};

mod common;
use common::{child_url, free_port, http, Proc};

const ADMIN_KEY: &str = "log-secrets-admin-key-ADMINKEY42";
const PASSWORD: &str = "correct-horse-PASSWORD-staple-42";
const TRAIT_VALUE: &str = "trait-value-TRAITSECRET-99";

async fn call(port: u16, method: &str, path: &str, auth: &[(&str, &str)], body: Value) -> Value {
    let (status, text) = http(port, method, path, auth, Some(&body))
        .await
        .expect("answer");
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scenario_logs_no_secret() {
    let t = test_store().await;
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flagstone"))
        .args(["--log-format", "json", "serve", "--database-url"])
        .arg(child_url(&t))
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--admin-key",
            ADMIN_KEY,
        ])
        .arg("--edge-cache-dir")
        .arg(cache.path())
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
    let proc = Proc(child);
    // Read the output as it comes, so the pipe never fills.
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    while http(port, "GET", "/health/liveness", &[], None)
        .await
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
    drop(proc);
    let logs = err_reader.join().unwrap() + &out_reader.join().unwrap();

    let mut publish_lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        // stdout also prints nothing secret but is not JSON: only stderr lines are checked.
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if v["span"]["name"] == "publish" {
                assert!(v["span"]["environment"].is_number(), "{line}");
                assert!(v["span"]["task"].is_number(), "{line}");
                publish_lines += 1;
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
    let json_lines = logs
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count();
    assert!(json_lines > 20, "JSON logs expected:\n{logs}");
    for (what, secret) in [
        ("the admin key", ADMIN_KEY),
        ("a password", PASSWORD),
        ("a trait value", TRAIT_VALUE),
        ("an environment key", key.as_str()),
        ("an API token", token.as_str()),
        ("a sign-up token", signup_token.as_str()),
    ] {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            panic!("{what} was logged: {line}");
        }
    }
}
