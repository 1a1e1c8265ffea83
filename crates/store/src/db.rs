//! One SQL text, two backends. `Tx` wraps a transaction on either SQLite or PostgreSQL and the
//! `sql!` macro runs the same query on whichever one it holds, so each backend keeps its native
//! types (no `Any` driver, whose type mapping loses booleans and integer widths).
//!
//! Every store operation runs inside a `Tx`: reads get a consistent snapshot, writes are atomic.
//! On SQLite, write transactions are serialised in-process by a mutex, so a deferred transaction
//! never has to upgrade its lock while another writer holds it (which SQLite answers with
//! SQLITE_BUSY instead of waiting).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::StoreError;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite {
        pool: SqlitePool,
        write_lock: Arc<Mutex<()>>,
        /// The database file (`None` in memory): claim sessions keep their lock files beside it.
        path: Option<std::path::PathBuf>,
    },
    Postgres(PgPool),
}

/// A transaction on either backend. Obtain one from [`crate::Store::read`] or
/// [`crate::Store::write`]; dropping it without `commit` rolls back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>, Option<OwnedMutexGuard<()>>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the backend connection (`&mut SqliteConnection` or
/// `&mut PgConnection`). The body is type-checked once per backend.
#[macro_export]
#[doc(hidden)]
macro_rules! sql {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t, _) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// The placeholders of a multi-row `VALUES` list: `($1, $2), ($3, $4)` for 2 rows of 2
/// columns. For SQLite, where a statement per row count is cheap to prepare; PostgreSQL binds
/// arrays instead (`UNNEST`), keeping one statement text.
pub(crate) fn values_rows(rows: usize, columns: usize) -> String {
    let row = |i: usize| {
        let params: Vec<String> = (1..=columns)
            .map(|c| format!("${}", i * columns + c))
            .collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t, _guard) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Options for opening a store.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `sqlite://path.db`, `sqlite::memory:` or `postgres://…`.
    pub url: String,
    /// PostgreSQL only: the schema to use (created if missing). Tests use one schema each.
    pub pg_schema: Option<String>,
    pub max_connections: u32,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pg_schema: None,
            max_connections: 10,
        }
    }
}

pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Pool, StoreError> {
    let url = opts.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut pg = PgConnectOptions::from_str(url)?;
        if let Some(schema) = &opts.pg_schema {
            validate_schema_name(schema)?;
            // Create the schema on a throwaway connection first; then every pooled
            // connection gets it as its search_path.
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(pg.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&admin)
                .await?;
            admin.close().await;
            pg = pg.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(pg)
            .await?;
        Ok(Pool::Postgres(pool))
    } else if url.starts_with("sqlite:") {
        let sq = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let path = (!in_memory).then(|| sq.get_filename().to_path_buf());
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            // A COMMIT that failed (disk full) can leave the connection inside its transaction,
            // and its rollback can fail the same way: such a connection is closed, not reused,
            // or every later write on it fails ("begin at non-zero transaction depth").
            .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect_with(sq)
            .await?;
        Ok(Pool::Sqlite {
            pool,
            write_lock: Arc::new(Mutex::new(())),
            path,
        })
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL (expected sqlite:… or postgres://…): {}",
            redact_url(url)
        )))
    }
}

/// A PostgreSQL pool that connects on first use instead of now: for a process that must start
/// while the database is unreachable (an edge serving its cached documents) and pick it up
/// when it comes back. No schema is created and nothing is migrated.
pub(crate) fn connect_lazy(opts: &ConnectOptions) -> Result<Pool, StoreError> {
    let url = opts.url.as_str();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Config(
            "only a PostgreSQL store can be opened before it is reachable".into(),
        ));
    }
    let mut pg = PgConnectOptions::from_str(url)?;
    if let Some(schema) = &opts.pg_schema {
        validate_schema_name(schema)?;
        pg = pg.options([("search_path", schema.as_str())]);
    }
    // Short: while the database is away, each attempt fails fast and callers fall back (the
    // edge keeps serving what it holds).
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(pg);
    Ok(Pool::Postgres(pool))
}

fn validate_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "invalid schema name {schema:?}"
        )))
    }
}

/// The connection pool as metrics report it (`flagstone_store_pool_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Connections open and in use by a transaction.
    pub in_use: u32,
    /// The pool's ceiling.
    pub max: u32,
    /// Transactions that had to wait for a connection since the store was opened (every
    /// connection was open and in use when they began).
    pub waits: u64,
}

/// Hides the password of a database URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}://{}:***{}", &url[..s], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Pool {
    pub(crate) async fn begin(&self, write: bool) -> Result<Tx, StoreError> {
        match self {
            Pool::Sqlite {
                pool, write_lock, ..
            } => {
                if write {
                    let guard = write_lock.clone().lock_owned().await;
                    // IMMEDIATE takes the write lock up front: a deferred transaction that read
                    // first fails at once (no busy wait) if another connection committed in
                    // between — another process on the same file, or a writer outside the mutex.
                    Ok(Tx::Sqlite(
                        pool.begin_with("BEGIN IMMEDIATE").await?,
                        Some(guard),
                    ))
                } else {
                    Ok(Tx::Sqlite(pool.begin().await?, None))
                }
            }
            Pool::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    /// A read-only transaction that sees one snapshot for all its statements. SQLite's read
    /// transactions already do; PostgreSQL is asked for REPEATABLE READ in its `BEGIN` (not in
    /// a second statement: a burst of builds pays one round trip less each).
    pub(crate) async fn begin_snapshot(&self) -> Result<Tx, StoreError> {
        match self {
            Pool::Sqlite { pool, .. } => Ok(Tx::Sqlite(pool.begin().await?, None)),
            Pool::Postgres(pool) => Ok(Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?,
            )),
        }
    }

    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Pool::Sqlite { pool, .. } => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Connections open, idle and allowed at most.
    pub(crate) fn stats(&self) -> (u32, u32, u32) {
        fn of<DB: sqlx::Database>(p: &sqlx::Pool<DB>) -> (u32, u32, u32) {
            (
                p.size(),
                p.num_idle() as u32,
                p.options().get_max_connections(),
            )
        }
        match self {
            Pool::Sqlite { pool, .. } => of(pool),
            Pool::Postgres(pool) => of(pool),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite { pool, .. } => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// PostgreSQL: drops `schema` and everything in it, giving up (an error) if a table's lock
    /// is not granted within 5 s rather than waiting behind a session that still uses it.
    /// SQLite has no schemas: nothing to do.
    pub(crate) async fn drop_schema(&self, schema: &str) -> Result<(), StoreError> {
        validate_schema_name(schema)?;
        if let Pool::Postgres(pool) = self {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '5s'")
                .execute(&mut *tx)
                .await?;
            // A name cannot be bound as a parameter; validated above to [A-Za-z0-9_].
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
