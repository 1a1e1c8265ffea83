//! Test harness: an isolated, migrated store per test. SQLite (a temp file) by default; when
//! `FLAGSTONE_TEST_DATABASE_URL` is set to a PostgreSQL URL, a fresh schema in that database,
//! so the same suite runs on both backends and tests run in parallel. Either is removed when
//! the test's [`TestStore`] is dropped (a PostgreSQL database would otherwise gather a schema of
//! some forty tables per test and run, and its catalog grow with every run).

use crate::{ConnectOptions, Store};

pub const TEST_DATABASE_URL_VAR: &str = "FLAGSTONE_TEST_DATABASE_URL";

/// A store for one test; the SQLite file or PostgreSQL schema lives as long as this value.
pub struct TestStore {
    pub store: Store,
    pub url: String,
    pub pg_schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(schema) = self.pg_schema.take() else {
            return;
        };
        let url = self.url.clone();
        // Tests run on current-thread runtimes, where a destructor cannot wait for a future:
        // a thread with a runtime of its own drops the schema, over a connection of its own.
        // The test's own connections may still be inside a transaction whose rollback was
        // left to the (now blocked) runtime, holding locks the drop would wait for: the schema
        // is this test's alone, so the sessions holding locks in it are ended first.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut opts = ConnectOptions::new(url);
                opts.max_connections = 1;
                let store = Store::connect(&opts).await.map_err(|e| e.to_string())?;
                end_sessions_in(&store, &schema)
                    .await
                    .map_err(|e| e.to_string())?;
                store.drop_schema(&schema).await.map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("test store: schema left behind: {e}");
        }
    }
}

/// Ends the other PostgreSQL sessions holding a lock on a table of `schema`.
async fn end_sessions_in(store: &Store, schema: &str) -> crate::Result<()> {
    use crate::sql;
    let mut tx = store.write().await?;
    sql!(&mut tx, |c| {
        sqlx::query(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
             JOIN pg_class r ON r.oid = l.relation \
             JOIN pg_namespace n ON n.oid = r.relnamespace \
             WHERE n.nspname = $1 AND l.pid <> pg_backend_pid() \
             GROUP BY l.pid",
        )
        .bind(schema)
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await
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

/// Every row of every table of the store as text, one line per row (`table: values`): tests
/// search it for secrets that must never be stored in clear.
pub async fn dump_text(store: &Store) -> String {
    use crate::sql;
    let mut tx = store.read().await.expect("read");
    let mut out = String::new();
    let query = tables_query(store.backend());
    let tables: Vec<String> = sql!(&mut tx, |c| {
        sqlx::query_scalar(query)
            .fetch_all(c)
            .await
            .expect("tables")
    });
    for t in tables {
        let rows: Vec<String> = match store.backend() {
            crate::Backend::Postgres => sql!(&mut tx, |c| {
                sqlx::query_scalar(&format!("SELECT CAST(x AS TEXT) FROM \"{t}\" x"))
                    .fetch_all(c)
                    .await
                    .expect("rows")
            }),
            crate::Backend::Sqlite => {
                let cols: Vec<String> = sql!(&mut tx, |c| {
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&t)
                        .fetch_all(c)
                        .await
                        .expect("columns")
                });
                if cols.is_empty() {
                    continue;
                }
                let expr = cols
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                sql!(&mut tx, |c| {
                    sqlx::query_scalar(&format!("SELECT {expr} FROM \"{t}\""))
                        .fetch_all(c)
                        .await
                        .expect("rows")
                })
            }
        };
        for r in rows {
            out.push_str(&t);
            out.push_str(": ");
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

fn tables_query(b: crate::Backend) -> &'static str {
    match b {
        crate::Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        crate::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    }
}
