//! Invitations over HTTP on either store: an invite link and an emailed invite are accepted by
//! signing up (the new user is a member with the invite's role), or by a signed-in user
//! joining; expired, withdrawn, used and mis-addressed invites are refused; hashes are stored
//! hashed; with SMTP configured the join link goes by mail (to a mail server in this test) and
//! not into the response.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use common::{As, TestApp, PASSWORD};
use flagstone_api::mail::SmtpMailer;
use flagstone_api::Invitations;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const HERE: &str = "127.0.0.1";

async fn organisation(app: &TestApp) -> i64 {
    let (s, org) = app
        .post("/api/v1/organisations/", json!({"name": "Acme"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    org["id"].as_i64().unwrap()
}

async fn sign_up(app: &TestApp, email: &str, hash: &str) -> common::Sent {
    app.call(
        Method::POST,
        "/api/v1/auth/users/",
        Some(json!({"email": email, "password": PASSWORD, "invite_hash": hash})),
        As::Nobody,
        HERE,
    )
    .await
}

async fn role_of(app: &TestApp, org: i64, email: &str) -> Option<String> {
    let (_, members) = app
        .get(&format!("/api/v1/organisations/{org}/users/"))
        .await;
    members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email)
        .map(|m| m["role"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn an_invite_link_admits_people_with_its_role_until_it_expires_or_is_deleted() {
    let app = TestApp::new().await;
    // The installation has a first user already, so sign-up is closed.
    app.sign_up("root@example.com").await;
    let org = organisation(&app).await;
    let links = format!("/api/v1/organisations/{org}/invite-links/");

    let (s, link) = app.post(&links, json!({"role": "ADMIN"})).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let hash = link["hash"].as_str().unwrap().to_string();
    assert!(link["join_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/invite/{hash}")));
    assert_eq!(link["role"], "ADMIN");

    let r = sign_up(&app, "ada@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["is_superuser"], false);
    assert_eq!(r.body["organisations"][0]["id"], org);
    assert_eq!(r.body["organisations"][0]["role"], "ADMIN");
    // A link is reusable.
    let r = sign_up(&app, "bob@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        role_of(&app, org, "bob@example.com").await.as_deref(),
        Some("ADMIN")
    );

    // Listed without its hash; the database holds no hash in clear either.
    let (_, list) = app.get(&links).await;
    assert_eq!(list[0]["id"], link["id"]);
    assert!(list[0].get("hash").is_none());
    let db = flagstone_store::testing::dump_text(app.store()).await;
    assert!(!db.contains(&hash));

    // Deleted: refused, naming the field; nothing is created.
    let (s, _) = app.delete(&format!("{links}{}/", link["id"])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = sign_up(&app, "carol@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["field"], "invite_hash");
    assert_eq!(role_of(&app, org, "carol@example.com").await, None);

    // Expired: refused.
    let (_, link) = app.post(&links, json!({"role": "USER"})).await;
    let hash = link["hash"].as_str().unwrap().to_string();
    app.clock.advance(7 * 24 * 3_600_000 + 1);
    let r = sign_up(&app, "carol@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["field"], "invite_hash");
    // Without an invite, sign-up stays closed.
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/users/",
            Some(json!({"email": "carol@example.com", "password": PASSWORD})),
            As::Nobody,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Times are ISO-8601 strings in the answers, and an expiry may be given as one.
    let (s, link) = app
        .post(
            &links,
            json!({"role": "USER", "expires_at": "2099-01-02T03:04:05Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    assert_eq!(link["expires_at"], "2099-01-02T03:04:05.000000Z");
    let (_, list) = app.get(&links).await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == link["id"])
        .unwrap();
    assert_eq!(listed["expires_at"], "2099-01-02T03:04:05.000000Z");
    assert!(
        listed["created_at"].as_str().unwrap().ends_with('Z'),
        "{listed}"
    );

    // Bad input: a role that does not exist, an expiry in the past or not a time.
    for body in [
        json!({"role": "OWNER"}),
        json!({"expires_at": 5}),
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
        json!({"expires_at": "next week"}),
    ] {
        let (s, b) = app.post(&links, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    }
}

#[tokio::test]
async fn an_emailed_invite_admits_its_person_once_into_its_groups() {
    let app = TestApp::new().await;
    app.sign_up("root@example.com").await;
    let org = organisation(&app).await;
    let (_, group) = app
        .post(
            &format!("/api/v1/organisations/{org}/groups/"),
            json!({"name": "QA"}),
        )
        .await;
    let (s, sent) = app
        .post(
            &format!("/api/v1/organisations/{org}/invite/"),
            json!({"invites": [{"email": "Ada@Example.com", "role": "USER", "permission_groups": [group["id"]]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    let sent = &sent[0];
    assert_eq!(sent["email_sent"], false, "no mail server configured");
    assert_eq!(sent["invite"]["email"], "Ada@Example.com");
    assert_eq!(sent["invite"]["permission_groups"], json!([group["id"]]));
    let url = sent["join_url"].as_str().unwrap();
    let hash = url.rsplit('/').next().unwrap().to_string();

    // The same address again, while the first waits: refused, nothing written.
    let audit = app.audit_count().await;
    let (s, b) = app
        .post(
            &format!("/api/v1/organisations/{org}/invite/"),
            json!({"invites": [{"email": "ada@example.com"}, {"email": "x@example.com"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["field"], "email");
    assert_eq!(app.audit_count().await, audit);
    let (_, waiting) = app
        .get(&format!("/api/v1/organisations/{org}/invites/"))
        .await;
    assert_eq!(waiting.as_array().unwrap().len(), 1);

    // Only the invited address may use it.
    let r = sign_up(&app, "eve@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["field"], "email");

    let r = sign_up(&app, "ada@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["organisations"][0]["role"], "USER");
    let (_, g) = app
        .get(&format!(
            "/api/v1/organisations/{org}/groups/{}/",
            group["id"]
        ))
        .await;
    assert_eq!(g["users"][0]["email"], "ada@example.com");

    // Used up.
    let (_, waiting) = app
        .get(&format!("/api/v1/organisations/{org}/invites/"))
        .await;
    assert_eq!(waiting, json!([]));
    let r = sign_up(&app, "ada2@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Withdrawn: refused.
    let (_, sent) = app
        .post(
            &format!("/api/v1/organisations/{org}/invite/"),
            json!({"emails": ["bob@example.com"]}),
        )
        .await;
    let hash = sent[0]["join_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (s, _) = app
        .delete(&format!(
            "/api/v1/organisations/{org}/invites/{}/",
            sent[0]["invite"]["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = sign_up(&app, "bob@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "invite_hash");
}

#[tokio::test]
async fn a_signed_in_user_joins_with_a_link_or_an_invite() {
    let app = TestApp::with_config(|c| c.allow_signup = true).await;
    app.sign_up("root@example.com").await;
    let org = organisation(&app).await;
    let ada = app.sign_up("ada@example.com").await;
    let token = ada["key"].as_str().unwrap().to_string();

    let (_, link) = app
        .post(
            &format!("/api/v1/organisations/{org}/invite-links/"),
            json!({}),
        )
        .await;
    let link_hash = link["hash"].as_str().unwrap();
    // A link is not an emailed invite: the dashboard then tries the link path.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/users/join/{link_hash}/"),
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/users/join/link/{link_hash}/"),
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"id": org, "name": "Acme", "role": "USER"}));

    let bob = app.sign_up("bob@example.com").await;
    let (_, sent) = app
        .post(
            &format!("/api/v1/organisations/{org}/invite/"),
            json!({"invites": [{"email": "bob@example.com", "role": "ADMIN"}]}),
        )
        .await;
    let hash = sent[0]["join_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // Ada may not use Bob's invitation.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/users/join/{hash}/"),
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/users/join/{hash}/"),
            None,
            As::Token(bob["key"].as_str().unwrap()),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "ADMIN");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/users/join/{hash}/"),
            None,
            As::Token(bob["key"].as_str().unwrap()),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "used up: {}", r.body);
    let r = app
        .call(
            Method::POST,
            "/api/v1/users/join/fsi_nonsense/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A mail server that accepts everything and keeps each message's text.
async fn mail_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let inbox = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            inbox.lock().unwrap().push(data.take().unwrap());
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, inbox)
}

#[tokio::test]
async fn with_smtp_the_join_link_goes_by_mail_and_not_into_the_response() {
    let (port, inbox) = mail_server().await;
    let mut app = TestApp::new().await;
    let state = app.state.clone().with_invitations(Invitations {
        public_url: Some("https://flags.example.com/".into()),
        mailer: Some(Arc::new(
            SmtpMailer::new(
                &format!("smtp://127.0.0.1:{port}"),
                "Flagstone <flags@example.com>",
            )
            .unwrap(),
        )),
    });
    app.set_state(state);
    app.sign_up("root@example.com").await;
    let org = organisation(&app).await;
    let (s, sent) = app
        .post(
            &format!("/api/v1/organisations/{org}/invite/"),
            json!({"invites": [{"email": "ada@example.com"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    assert_eq!(sent[0]["email_sent"], true, "{sent}");
    assert_eq!(sent[0]["join_url"], Value::Null);

    let mail = inbox.lock().unwrap().pop().expect("one mail");
    // Long lines travel quoted-printable: undo its soft line breaks.
    let mail = mail.replace("=\n", "");
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(mail.contains("Acme"), "{mail}");
    let start = mail
        .find("https://flags.example.com/invite/")
        .expect("a join link");
    let hash: String = mail[start + "https://flags.example.com/invite/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let r = sign_up(&app, "ada@example.com", &hash).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["organisations"][0]["id"], org);
}
