//! Issue 15 §3: `GET /api/v1/environment-document/` answers 304 only when the client really
//! holds the current document. The poller here behaves as Flagsmith's edge-proxy does: it sends
//! `If-Modified-Since` built from the `updated_at` of the document it holds, truncated to whole
//! seconds, and keeps its document on 304. Documents' times are set exactly (no sleeping), so
//! two changes land in one second every run.

mod common;

use axum::http::{Method, StatusCode};
use common::EdgeApp;
use serde_json::{json, Value};

/// A second in 2023, as Unix milliseconds.
const SECOND: i64 = 1_700_000_000_000;

/// What Flagsmith's edge-proxy holds and sends.
struct EdgeProxyPoller {
    server_key: String,
    document: Option<Value>,
}

impl EdgeProxyPoller {
    /// `If-Modified-Since` as the edge-proxy builds it: the held document's `updated_at`,
    /// parsed, formatted as an HTTP date (whole seconds).
    fn if_modified_since(&self) -> Option<String> {
        let updated_at = self.document.as_ref()?["updated_at"].as_str()?;
        let t =
            time::OffsetDateTime::parse(updated_at, &time::format_description::well_known::Rfc3339)
                .ok()?;
        let secs = t.unix_timestamp() as u64;
        Some(httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        ))
    }

    async fn poll(&mut self, app: &EdgeApp) -> StatusCode {
        let ims = self.if_modified_since();
        let headers: Vec<(&str, &str)> = ims
            .as_deref()
            .map(|v| vec![("if-modified-since", v)])
            .unwrap_or_default();
        let r = app
            .sdk(
                Method::GET,
                "/api/v1/environment-document/",
                Some(&self.server_key),
                None,
                &headers,
            )
            .await;
        if r.status == StatusCode::OK {
            self.document = Some(r.json());
        } else {
            assert_eq!(r.status, StatusCode::NOT_MODIFIED);
            assert!(self.document.is_some(), "304 without a document held");
        }
        r.status
    }

    fn value_of(&self, feature: &str) -> Value {
        self.document.as_ref().unwrap()["feature_states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"]["name"] == feature)
            .map(|f| f["feature_state_value"].clone())
            .unwrap()
    }
}

async fn set_updated_at(app: &EdgeApp, key: &str, ms: i64) {
    let mut tx = app.t.store.write().await.unwrap();
    flagstone_store::sql!(&mut tx, |c| sqlx::query(
        "UPDATE environments SET updated_at = $1 WHERE api_key = $2"
    )
    .bind(ms)
    .bind(key)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();
}

/// Sets the feature's value, stamps the environment with `ms` and publishes.
async fn change(app: &EdgeApp, key: &str, feature: i64, value: &str, ms: i64) {
    let states = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/featurestates/?feature={feature}"),
            None,
        )
        .await;
    let fs = states["results"][0]["id"].as_i64().unwrap();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{fs}/"),
        Some(json!({"feature_state_value": value})),
    )
    .await;
    set_updated_at(app, key, ms).await;
    app.publish().await;
}

#[tokio::test]
async fn two_changes_in_one_second_reach_an_edge_proxy_poller() {
    let app = EdgeApp::new().await;
    let (project, key, server_key) = app.setup().await;
    let banner = app
        .feature(project, &key, "banner", true, json!("first"))
        .await;
    set_updated_at(&app, &key, SECOND + 100).await;
    app.publish().await;
    let mut poller = EdgeProxyPoller {
        server_key,
        document: None,
    };
    assert_eq!(poller.poll(&app).await, StatusCode::OK);
    assert_eq!(poller.value_of("banner"), "first");
    // Nothing changed: not modified.
    assert_eq!(poller.poll(&app).await, StatusCode::NOT_MODIFIED);

    // A second change 600 ms later, in the same second: the poller must get it.
    change(&app, &key, banner, "second", SECOND + 700).await;
    assert_eq!(poller.poll(&app).await, StatusCode::OK);
    assert_eq!(poller.value_of("banner"), "second");
    // Its If-Modified-Since names a second two documents share: it cannot prove it holds the
    // latest, so it keeps getting the document (never a wrong 304) until the next change.
    assert_eq!(poller.poll(&app).await, StatusCode::OK);
    assert_eq!(poller.value_of("banner"), "second");

    // A change in a later second: fetched once, then 304 again.
    change(&app, &key, banner, "third", SECOND + 2_300).await;
    assert_eq!(poller.poll(&app).await, StatusCode::OK);
    assert_eq!(poller.value_of("banner"), "third");
    assert_eq!(poller.poll(&app).await, StatusCode::NOT_MODIFIED);
    assert_eq!(poller.value_of("banner"), "third");
}

#[tokio::test]
async fn the_etag_decides_when_both_validators_are_sent() {
    let app = EdgeApp::new().await;
    let (project, key, server_key) = app.setup().await;
    let banner = app.feature(project, &key, "banner", true, json!("a")).await;
    set_updated_at(&app, &key, SECOND + 100).await;
    app.publish().await;
    let get = |headers: Vec<(&'static str, String)>| {
        let app = &app;
        let server_key = server_key.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.sdk(
                Method::GET,
                "/api/v1/environment-document/",
                Some(&server_key),
                None,
                &h,
            )
            .await
        }
    };
    let first = get(vec![]).await;
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    let old_date = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
    let future_date = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_000_000_000),
    );
    // A matching tag wins over a date that says "modified".
    let r = get(vec![
        ("if-none-match", etag.clone()),
        ("if-modified-since", old_date),
    ])
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // A stale tag wins over a date that says "not modified".
    change(&app, &key, banner, "b", SECOND + 300).await;
    let r = get(vec![
        ("if-none-match", etag),
        ("if-modified-since", future_date),
    ])
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["feature_states"][0]["feature_state_value"], "b");
}
