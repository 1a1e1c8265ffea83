//! Test harness: an isolated, migrated store per test. SQLite (a temp file) by default; when
//! `FLAGSTONE_TEST_DATABASE_URL` is set to a PostgreSQL URL, a fresh schema in that database,
//! so the same suite runs on both backends and tests run in parallel.

use crate::{ConnectOptions, Store};

pub const TEST_DATABASE_URL_VAR: &str = "FLAGSTONE_TEST_DATABASE_URL";

/// A store for one test; the SQLite file or PostgreSQL schema lives as long as this value.
pub struct TestStore {
    pub store: Store,
    pub url: String,
    pub pg_schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// Options that reach the same database (e.g. for a second process).
    pub fn connect_options(&self) -> ConnectOptions {
        let mut o = ConnectOptions::new(self.url.clone());
        o.pg_schema = self.pg_schema.clone();
        o
    }
}

pub async fn test_store() -> TestStore {
    match std::env::var(TEST_DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => {
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut opts = ConnectOptions::new(url.clone());
            opts.pg_schema = Some(schema.clone());
            opts.max_connections = 5;
            let store = Store::open(&opts)
                .await
                .expect("open test PostgreSQL store");
            TestStore {
                store,
                url,
                pg_schema: Some(schema),
                _dir: None,
            }
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            let store = Store::open(&ConnectOptions::new(url.clone()))
                .await
                .expect("open test SQLite store");
            TestStore {
                store,
                url,
                pg_schema: None,
                _dir: Some(dir),
            }
        }
    }
}
