//! Flagstone's persistence layer: the only crate that speaks SQL.
//!
//! SQLite is the embedded default (one file, WAL, zero setup); PostgreSQL is the production
//! backend. Every admin change goes through [`Change`]: one transaction that writes the entity,
//! its audit entry, bumps the affected environments' revisions and requests their publication
//! (a row in `publish_jobs`). If the transaction commits, the change will be published; if not,
//! nothing happened.

pub mod accounts;
pub mod audit;
mod change;
pub mod change_requests;
pub mod clock;
pub mod db;
pub mod document;
pub mod environments;
mod error;
pub mod evaluations;
pub mod features;
mod filter;
pub mod history;
pub mod id_list;
pub mod identities;
pub mod keys;
pub mod limits;
pub mod organisations;
pub mod projects;
pub mod promotion;
pub mod queue;
pub mod scheduled;
pub mod scopes;
pub mod segments;
pub mod tags;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod transfer;
pub mod usage;
pub mod values;
pub mod webhooks;

pub use change::{Actor, AuditEntry, Change, PublishSettings};
pub use clock::{now_ms, Clock};
pub use db::{Backend, ConnectOptions, PoolStats, Tx};
pub use error::{Result, StoreError, Unavailable};
pub use limits::{LimitName, Limits};

use db::Pool;

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    publish: PublishSettings,
    /// Signalled after every committed change that requested a publish, so an in-process
    /// worker starts at once instead of at its next poll.
    changes: std::sync::Arc<tokio::sync::Notify>,
    /// What the queue schedules by (see [`Clock`]).
    clock: Clock,
    /// Transactions that found every connection of a full pool in use (see [`PoolStats`]).
    waits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Signalled after every committed change that queued webhook deliveries.
    webhook_events: std::sync::Arc<tokio::sync::Notify>,
    /// Called with each environment a committed change deleted (see
    /// [`Store::on_environment_deleted`]).
    deletions: std::sync::Arc<change::DeletionListeners>,
}

/// A page of results and the total count, for `{count, next, previous, results}` lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub count: i64,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// The same page with each result converted by `f`; the first failure fails it.
    pub fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            count: self.count,
            results: self.results.into_iter().map(f).collect::<Result<_>>()?,
        })
    }
}

/// Which page of a list to read. `page` starts at 1.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: i64,
    pub page_size: i64,
}

impl PageRequest {
    pub const MAX_PAGE_SIZE: i64 = 1000;

    pub fn new(page: i64, page_size: i64) -> Self {
        PageRequest {
            page: page.max(1),
            page_size: page_size.clamp(1, Self::MAX_PAGE_SIZE),
        }
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest::new(1, 100)
    }
}

/// What a list of children reads: `columns` of the rows of `table` whose `parent` column holds
/// the parent's id, in `order` (an `ORDER BY` clause). All are constants of the calling module.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListOf {
    table: &'static str,
    columns: &'static str,
    parent: &'static str,
    order: &'static str,
}

impl ListOf {
    /// `columns` of `table` under `parent`, in `order`.
    pub(crate) const fn new(
        table: &'static str,
        columns: &'static str,
        parent: &'static str,
        order: &'static str,
    ) -> ListOf {
        ListOf {
            table,
            columns,
            parent,
            order,
        }
    }
}

/// One page of the rows [`ListOf`] names under `parent_id`, with the count of all of them.
pub(crate) async fn list_window<R>(
    tx: &mut Tx,
    of: ListOf,
    parent_id: i64,
    page: PageRequest,
) -> Result<Page<R>>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    let ListOf {
        table,
        columns,
        parent,
        order,
    } = of;
    let count: i64 = sql!(tx, |c| {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {parent} = $1"))
            .bind(parent_id)
            .fetch_one(c)
            .await?
    });
    let results: Vec<R> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {columns} FROM {table} WHERE {parent} = $1 \
             ORDER BY {order} LIMIT $2 OFFSET $3"
        ))
        .bind(parent_id)
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}

impl Store {
    /// Opens the database and runs pending migrations.
    pub async fn open(opts: &ConnectOptions) -> Result<Store> {
        let store = Store::connect(opts).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating.
    pub async fn connect(opts: &ConnectOptions) -> Result<Store> {
        Ok(Store {
            pool: db::connect(opts).await?,
            publish: PublishSettings::default(),
            changes: Default::default(),
            clock: Clock::system(),
            waits: Default::default(),
            webhook_events: Default::default(),
            deletions: Default::default(),
        })
    }

    /// Opens a PostgreSQL store that connects on first use (nothing is checked or migrated
    /// now): what an edge uses to start while the database is unreachable.
    pub fn connect_lazy(opts: &ConnectOptions) -> Result<Store> {
        Ok(Store {
            pool: db::connect_lazy(opts)?,
            publish: PublishSettings::default(),
            changes: Default::default(),
            clock: Clock::system(),
            waits: Default::default(),
            webhook_events: Default::default(),
            deletions: Default::default(),
        })
    }

    pub fn with_publish_settings(mut self, publish: PublishSettings) -> Self {
        self.publish = publish;
        self
    }

    pub fn publish_settings(&self) -> PublishSettings {
        self.publish
    }

    /// The same store scheduling by `clock` (tests use a manual clock to step the queue).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock publish requests, leases, backoff and ages are measured with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Notified after each committed change that requested a publish (in this process only;
    /// other processes see the queue).
    pub fn change_notifier(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.changes.clone()
    }

    /// Notified after each committed change that queued webhook deliveries (in this process
    /// only; other processes poll the queue).
    pub fn webhook_notifier(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.webhook_events.clone()
    }

    /// Runs `listener` with the id of every environment a change deletes, after the deletion
    /// commits and before that change's `commit` returns: an edge in this process stops
    /// serving the environment's keys before the deleting request is answered. (Edges in other
    /// processes hear it by notification: see [`queue::notify`].)
    pub fn on_environment_deleted(&self, listener: impl Fn(i64) + Send + Sync + 'static) {
        self.deletions.add(listener);
    }

    pub async fn migrate(&self) -> Result<()> {
        self.pool.migrate().await
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The connection pool's size, use and waits.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle, max) = self.pool.stats();
        PoolStats {
            size,
            in_use: size.saturating_sub(idle),
            max,
            waits: self.waits.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Counts a transaction about to begin on a pool whose every connection is busy.
    pub(crate) fn note_wait(&self) {
        let (size, idle, max) = self.pool.stats();
        if idle == 0 && size >= max {
            self.waits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A read-only transaction (a consistent snapshot on PostgreSQL).
    pub async fn read(&self) -> Result<Tx> {
        self.note_wait();
        self.pool.begin(false).await
    }

    /// A read-only transaction whose statements all see one committed state (a document
    /// build reads several tables and must not mix two revisions).
    pub async fn read_snapshot(&self) -> Result<Tx> {
        self.note_wait();
        self.pool.begin_snapshot().await
    }

    /// A write transaction without audit or publishing; for internal bookkeeping only.
    /// Admin changes use [`Store::change`].
    pub async fn write(&self) -> Result<Tx> {
        self.note_wait();
        self.pool.begin(true).await
    }

    /// Begins an admin change made by `actor`.
    pub async fn change(&self, actor: &Actor) -> Result<Change> {
        self.note_wait();
        Ok(Change::new(
            self.pool.begin(true).await?,
            actor.clone(),
            self.publish,
            self.changes.clone(),
            self.clock.clone(),
            self.webhook_events.clone(),
            self.deletions.clone(),
        ))
    }

    pub async fn close(&self) {
        self.pool.close().await
    }

    /// Drops a PostgreSQL schema this store's connections can reach (a bench's or a test's
    /// own, when it ends); nothing on SQLite. Then closes the store: its tables are gone.
    pub async fn drop_schema(&self, schema: &str) -> Result<()> {
        let dropped = self.pool.drop_schema(schema).await;
        self.pool.close().await;
        dropped
    }
}
