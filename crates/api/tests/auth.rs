//! Accounts and sign-in over HTTP: the first user bootstraps the installation, sign-up is
//! otherwise closed, tokens and sessions work, expire and are revoked, CSRF protects
//! cookie-authenticated changes, the audit log names the user, and failed attempts are
//! rate-limited (time moves through the test clock, never by sleeping).

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{As, TestApp, ADMIN_KEY, PASSWORD};
use serde_json::json;

const HERE: &str = "127.0.0.1";

#[tokio::test]
async fn the_first_user_bootstraps_the_installation_then_sign_up_is_closed() {
    let app = TestApp::new().await;
    let first = app.sign_up("Ada@Example.com").await;
    assert_eq!(first["email"], "Ada@Example.com");
    assert_eq!(first["is_superuser"], true);
    assert_eq!(first["auth_type"], "EMAIL");
    assert_eq!(first["organisations"][0]["role"], "ADMIN");
    assert_eq!(first["organisations"][0]["name"], "Default organisation");
    assert!(first.get("password").is_none() && first.get("password_hash").is_none());
    let key = first["key"].as_str().unwrap();
    let r = app
        .call(Method::GET, "/api/v1/projects/", None, As::Token(key), HERE)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/users/",
            Some(json!({"email": "eve@example.com", "password": PASSWORD})),
            As::Nobody,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "signup_closed");

    // The same email, differently cased, is the same account.
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login/",
            Some(json!({"email": " ada@example.COM ", "password": PASSWORD})),
            As::Nobody,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn open_sign_up_makes_plain_users_and_checks_the_password_policy() {
    let app = TestApp::with_config(|c| c.allow_signup = true).await;
    app.sign_up("first@example.com").await;
    let second = app.sign_up("second@example.com").await;
    assert_eq!(second["is_superuser"], false);
    assert_eq!(second["organisations"], json!([]));

    for (body, field) in [
        (
            json!({"email": "x@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "x@example.com", "password": "12345678901"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "second@EXAMPLE.com", "password": PASSWORD}),
            "email",
        ),
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/users/",
                Some(body),
                As::Nobody,
                HERE,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["field"], field, "{}", r.body);
    }
}

#[tokio::test]
async fn tokens_sign_in_expire_and_are_revoked_by_logout() {
    let app = TestApp::new().await;
    app.sign_up("ada@example.com").await;
    let token = app.login("ada@example.com").await;
    assert!(token.starts_with("fst_"));

    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/users/me/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["email"], "ada@example.com");
    assert!(r.body["last_login_at"].is_i64());

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/logout/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/users/me/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "revoked on the next request"
    );

    let token = app.login("ada@example.com").await;
    app.clock
        .advance(app.state.auth.config.token_ttl_ms - 1_000);
    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/users/me/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.clock.advance(1_000);
    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/users/me/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired");

    // Keys are not accounts.
    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/users/me/",
            None,
            As::Key(ADMIN_KEY),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["missing_permission"], "USER_ACCOUNT");
}

#[tokio::test]
async fn a_password_change_revokes_every_token_and_session() {
    let app = TestApp::new().await;
    app.sign_up("ada@example.com").await;
    let a = app.login("ada@example.com").await;
    let b = app.login("ada@example.com").await;
    let new_password = "staple-battery-horse";

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/users/set_password/",
            Some(json!({"current_password": "wrong-password", "new_password": new_password})),
            As::Token(&a),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "current_password");

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/users/set_password/",
            Some(json!({"current_password": PASSWORD, "new_password": "password"})),
            As::Token(&a),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "new_password");

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/users/set_password/",
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
            As::Token(&a),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    for t in [&a, &b] {
        let r = app
            .call(
                Method::GET,
                "/api/v1/auth/users/me/",
                None,
                As::Token(t),
                HERE,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let login = |password: &'static str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login/",
            Some(json!({"email": "ada@example.com", "password": password})),
            As::Nobody,
            HERE,
        )
    };
    assert_eq!(login(PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(login(new_password).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_browser_session_needs_its_csrf_token_to_change_anything() {
    let app = TestApp::new().await;
    app.sign_up("ada@example.com").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/session/",
            Some(json!({"email": "ada@example.com", "password": PASSWORD})),
            As::Nobody,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let set_cookie = r.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP without --secure-cookies"
    );
    let cookie = set_cookie
        .strip_prefix("flagstone_session=")
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_string();
    let csrf = r.body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(r.body["user"]["email"], "ada@example.com");

    // A reloaded page recovers the CSRF token.
    let s = As::Session {
        cookie: &cookie,
        csrf: None,
    };
    let r = app
        .call(Method::GET, "/api/v1/auth/session/", None, s, HERE)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["csrf_token"], csrf.as_str());

    // Reads need no CSRF token; changes do, and a refused change writes nothing.
    let r = app
        .call(Method::GET, "/api/v1/organisations/", None, s, HERE)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let audit_before = app.audit_count().await;
    for wrong in [None, Some("0000")] {
        let s = As::Session {
            cookie: &cookie,
            csrf: wrong,
        };
        let r = app
            .call(
                Method::POST,
                "/api/v1/organisations/",
                Some(json!({"name": "X"})),
                s,
                HERE,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body["detail"], "CSRF token missing or wrong");
    }
    assert_eq!(app.audit_count().await, audit_before);
    let ok = As::Session {
        cookie: &cookie,
        csrf: Some(&csrf),
    };
    let r = app
        .call(
            Method::POST,
            "/api/v1/organisations/",
            Some(json!({"name": "X"})),
            ok,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Sign-out needs the token too, then revokes the session and clears the cookie.
    let r = app
        .call(Method::DELETE, "/api/v1/auth/session/", None, s, HERE)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::DELETE, "/api/v1/auth/session/", None, ok, HERE)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = app
        .call(Method::GET, "/api/v1/auth/session/", None, s, HERE)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(Method::GET, "/api/v1/organisations/", None, s, HERE)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire() {
    let app = TestApp::with_config(|c| c.secure_cookies = true).await;
    app.sign_up("ada@example.com").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/session/",
            Some(json!({"email": "ada@example.com", "password": PASSWORD})),
            As::Nobody,
            HERE,
        )
        .await;
    let set_cookie = r.header("set-cookie").unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let s = As::Session {
        cookie: &cookie,
        csrf: None,
    };
    app.clock.advance(app.state.auth.config.session_ttl_ms);
    let r = app
        .call(Method::GET, "/api/v1/auth/session/", None, s, HERE)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_audit_log_names_the_user() {
    let app = TestApp::new().await;
    let user = app.sign_up("ada@example.com").await;
    let token = user["key"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            "/api/v1/organisations/",
            Some(json!({"name": "Acme"})),
            As::Token(token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (_, audit) = app.get("/api/v1/audit/?page_size=1").await;
    let entry = &audit["results"][0];
    assert_eq!(entry["actor"], "ada@example.com");
    assert_eq!(entry["user_id"], user["id"]);
    assert_eq!(entry["organisation_id"], r.body["id"]);
}

/// Signs in with `password` as `email` from `from`.
async fn try_login(app: &TestApp, email: &str, password: &str, from: &str) -> common::Sent {
    app.call(
        Method::POST,
        "/api/v1/auth/login/",
        Some(json!({"email": email, "password": password})),
        As::Nobody,
        from,
    )
    .await
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_email_and_the_limit_lifts() {
    let app = TestApp::new().await;
    app.sign_up("ada@example.com").await;
    let limits = app.state.auth.config.limits;
    for i in 0..limits.login_failures_per_email {
        // From different addresses: the per-email limit alone applies.
        let r = try_login(
            &app,
            "ada@example.com",
            "wrong-password",
            &format!("10.0.0.{i}"),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // Now even the right password is refused: guessing stops here.
    let r = try_login(&app, "ada@example.com", PASSWORD, "10.0.1.1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry > 0 && retry * 1000 <= limits.login_window_ms,
        "{retry}"
    );
    // Another account is not affected.
    app.create_user("bob@example.com").await;
    assert_eq!(
        try_login(&app, "bob@example.com", PASSWORD, "10.0.1.1")
            .await
            .status,
        StatusCode::OK
    );

    app.clock.advance(retry * 1000);
    assert_eq!(
        try_login(&app, "ada@example.com", PASSWORD, "10.0.1.1")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_address() {
    let app = TestApp::new().await;
    app.sign_up("ada@example.com").await;
    let limits = app.state.auth.config.limits;
    for i in 0..limits.login_failures_per_address {
        let r = try_login(
            &app,
            &format!("nobody{i}@example.com"),
            "wrong-password",
            "10.9.9.9",
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = try_login(&app, "ada@example.com", PASSWORD, "10.9.9.9").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        try_login(&app, "ada@example.com", PASSWORD, "10.9.9.10")
            .await
            .status,
        StatusCode::OK
    );
    app.clock.advance(limits.login_window_ms);
    assert_eq!(
        try_login(&app, "ada@example.com", PASSWORD, "10.9.9.9")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_in_does_not_tell_whether_an_account_exists() {
    let app = TestApp::with_config(|c| {
        c.limits.login_failures_per_email = 1000;
        c.limits.login_failures_per_address = 1000;
    })
    .await;
    app.sign_up("ada@example.com").await;
    let unknown = try_login(&app, "nobody@example.com", "wrong-password", HERE).await;
    let wrong = try_login(&app, "ada@example.com", "wrong-password", HERE).await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(
        wrong.body,
        json!({"non_field_errors": ["Unable to log in with provided credentials."]})
    );

    // Timing: both verify one Argon2id hash (a dummy one for the unknown email). Interleaved
    // rounds; the fastest of each compared, since load on a shared machine only ever adds time.
    let mut t_unknown = Vec::new();
    let mut t_wrong = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        try_login(&app, "nobody@example.com", "wrong-password", HERE).await;
        t_unknown.push(t.elapsed());
        let t = Instant::now();
        try_login(&app, "ada@example.com", "wrong-password", HERE).await;
        t_wrong.push(t.elapsed());
    }
    let fastest = |v: &[Duration]| v.iter().min().expect("seven rounds").as_secs_f64();
    let (u, w) = (fastest(&t_unknown), fastest(&t_wrong));
    println!(
        "sign-in failure, fastest of 7: unknown email {:.1} ms, wrong password {:.1} ms",
        u * 1e3,
        w * 1e3
    );
    assert!(
        (0.5..2.0).contains(&(u / w)),
        "unknown email {u:.4}s vs wrong password {w:.4}s"
    );
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address_and_valid_ones_pass() {
    let app = TestApp::new().await;
    let limits = app.state.auth.config.limits;
    let attacker = "10.6.6.6";
    for i in 0..limits.auth_failures_per_address - 1 {
        let who = match i % 3 {
            0 => As::Key("wrong-key-wrong-key"),
            1 => As::Token("fst_notarealtokennotarealtokennotarealtoken1234"),
            _ => As::Session {
                cookie: "fss_bogus",
                csrf: None,
            },
        };
        let r = app
            .call(Method::GET, "/api/v1/projects/", None, who, attacker)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = app
        .call(
            Method::GET,
            "/api/v1/projects/",
            None,
            As::Key("wrong-key-wrong-key"),
            attacker,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0);

    // Valid credentials from the same address are unaffected, and so are other addresses.
    let r = app
        .call(
            Method::GET,
            "/api/v1/projects/",
            None,
            As::Key(ADMIN_KEY),
            attacker,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::GET,
            "/api/v1/projects/",
            None,
            As::Key("wrong-key-wrong-key"),
            "10.0.0.1",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Sessions checked by GET /auth/session/ count too.
    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/session/",
            None,
            As::Session {
                cookie: "fss_x",
                csrf: None,
            },
            attacker,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    app.clock.advance(retry * 1000);
    let r = app
        .call(
            Method::GET,
            "/api/v1/projects/",
            None,
            As::Key("wrong-key-wrong-key"),
            attacker,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "lifted");
}
