//! No password, token, session, CSRF token or key is ever stored in clear or written to a
//! log line: a whole scenario runs with every log event of every crate captured at TRACE level,
//! then the captured logs and a dump of every table are searched for each secret it used.

mod common;

use std::io::Write;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use common::{As, TestApp, ADMIN_KEY, PASSWORD};
use serde_json::json;

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_all_logs() {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(|| Capture)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
}

const HERE: &str = "127.0.0.1";

/// Asserts that neither the logs nor the database hold `secret`, nor the part of it that is not
/// its stored lookup.
fn assert_nowhere(name: &str, secret: &str, logs: &str, db: &str) {
    assert!(!secret.is_empty());
    let tail = &secret[secret.len().saturating_sub(24)..];
    for (place, text) in [("logs", logs), ("database", db)] {
        assert!(
            !text.contains(secret),
            "{name} found in clear in the {place}"
        );
        assert!(
            !text.contains(tail),
            "the end of {name} found in the {place}"
        );
    }
}

#[tokio::test]
async fn secrets_are_never_stored_or_logged_in_clear() {
    capture_all_logs();
    let app = TestApp::with_config(|c| c.allow_signup = true).await;
    let signed_up = app.sign_up("ada@example.com").await;
    let signup_token = signed_up["key"].as_str().unwrap().to_string();
    let token = app.login("ada@example.com").await;

    let wrong_password = "wrong-horse-battery-staple";
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login/",
            Some(json!({"email": "ada@example.com", "password": wrong_password})),
            As::Nobody,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/session/",
            Some(json!({"email": "ada@example.com", "password": PASSWORD})),
            As::Nobody,
            HERE,
        )
        .await;
    let set_cookie = r.header("set-cookie").unwrap().to_string();
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let csrf = r.body["csrf_token"].as_str().unwrap().to_string();
    let s = As::Session {
        cookie: &cookie,
        csrf: Some(&csrf),
    };
    let r = app
        .call(
            Method::POST,
            "/api/v1/organisations/",
            Some(json!({"name": "Acme"})),
            s,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call(
            Method::POST,
            "/api/v1/organisations/",
            Some(json!({"name": "Nope"})),
            As::Session {
                cookie: &cookie,
                csrf: Some("bad"),
            },
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let bad_key = "not-the-installation-key-123";
    let r = app
        .call(
            Method::GET,
            "/api/v1/projects/",
            None,
            As::Key(bad_key),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            Method::GET,
            "/api/v1/projects/",
            None,
            As::Key(ADMIN_KEY),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let new_password = "staple-battery-horse-correct";
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/users/set_password/",
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let new_token = {
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/login/",
                Some(json!({"email": "ada@example.com", "password": new_password})),
                As::Nobody,
                HERE,
            )
            .await;
        r.body["key"].as_str().unwrap().to_string()
    };
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/logout/",
            None,
            As::Token(&new_token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let db = flagstone_store::testing::dump_text(app.store()).await;
    let logs = String::from_utf8(LOGS.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("signed in"), "the capture works");
    assert!(db.contains("ada@example.com"), "the dump works");
    for (name, secret) in [
        ("the password", PASSWORD),
        ("the new password", new_password),
        ("a wrong password", wrong_password),
        ("the sign-up token", signup_token.as_str()),
        ("an API token", token.as_str()),
        ("the newest API token", new_token.as_str()),
        ("the session cookie", cookie.as_str()),
        ("the CSRF token", csrf.as_str()),
        ("the installation key", ADMIN_KEY),
        ("a wrong key", bad_key),
    ] {
        assert_nowhere(name, secret, &logs, &db);
    }
}
