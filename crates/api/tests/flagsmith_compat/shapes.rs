//! What the suite checks answers with: Flagsmith's field names for each resource, and helpers
//! to build a project the way Flagsmith's clients do.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::TestApp;

/// Asserts `body` carries every one of `fields` (the names Flagsmith's serializer gives).
pub fn has_fields(what: &str, body: &Value, fields: &[&str]) {
    for f in fields {
        assert!(body.get(*f).is_some(), "{what}: no `{f}` in {body}");
    }
}

/// Asserts `body[field]` is an ISO-8601 date-time string (as Django REST framework prints
/// dates), not a number.
pub fn is_iso_datetime(what: &str, body: &Value, field: &str) {
    let text = body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: `{field}` is not a string in {body}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{what}: `{field}` = {text:?} is not ISO-8601: {e}"));
}

/// An organisation, project and environment made with the bodies Flagsmith's clients send.
pub struct World {
    pub org: Value,
    pub project: Value,
    pub env: Value,
}

impl World {
    pub async fn new(app: &TestApp) -> World {
        // flagsmith-go-api-client `Organisation`/`Project`/`Environment` bodies.
        let (s, org) = app
            .post("/api/v1/organisations/", json!({"name": "Acme"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{org}");
        let (s, project) = app
            .post(
                "/api/v1/projects/",
                json!({"name": "Web", "organisation": org["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{project}");
        let (s, env) = app
            .post(
                "/api/v1/environments/",
                json!({"name": "Production", "project": project["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{env}");
        World { org, project, env }
    }

    pub fn project_id(&self) -> i64 {
        self.project["id"].as_i64().unwrap()
    }

    pub fn env_key(&self) -> &str {
        self.env["api_key"].as_str().unwrap()
    }

    #[allow(dead_code)]
    pub fn env_id(&self) -> i64 {
        self.env["id"].as_i64().unwrap()
    }
}
