//! The store's typed errors. The API maps each variant to a status code; a client's mistake is
//! never a `Database` error.

use crate::limits::LimitName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed entity does not exist (or is not visible from where it was addressed).
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    /// A field of the input is invalid.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    /// A uniqueness rule would be broken (duplicate name, override already exists…).
    #[error("{field}: {detail}")]
    Conflict { field: String, detail: String },
    /// A configured limit would be exceeded; nothing was written.
    #[error("limit {limit} exceeded (max {max}): {detail}")]
    LimitExceeded {
        limit: LimitName,
        max: i64,
        detail: String,
    },
    /// The store was configured wrongly (bad URL, bad schema name).
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data could not be decoded; points at corruption or a schema mismatch.
    #[error("corrupt stored data in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn conflict(field: impl Into<String>, detail: impl Into<String>) -> Self {
        StoreError::Conflict {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn not_found(resource: &'static str) -> Self {
        StoreError::NotFound { resource }
    }

    /// Why the store cannot take this request *now* — it may later, and it is nobody's mistake —
    /// or `None` for any other error. The API answers these with 503 and the reason.
    pub fn unavailable(&self) -> Option<Unavailable> {
        let StoreError::Database(e) = self else {
            return None;
        };
        match e {
            sqlx::Error::Database(db) => {
                let code = db.code();
                let message = db.message();
                // SQLite: SQLITE_FULL (13), or a write that hit ENOSPC; PostgreSQL: disk_full
                // (53100) and out of memory (53200).
                if matches!(code.as_deref(), Some("13") | Some("53100"))
                    || message.contains("disk is full")
                    || message.contains("No space left")
                {
                    Some(Unavailable::StorageFull)
                } else if matches!(code.as_deref(), Some("5") | Some("6") | Some("53200")) {
                    // SQLITE_BUSY / SQLITE_LOCKED past the busy timeout; out of memory.
                    Some(Unavailable::Busy)
                } else if code
                    .as_deref()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
                {
                    // Connection exceptions, an administrator's shutdown or cut.
                    Some(Unavailable::DatabaseUnreachable)
                } else {
                    None
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Some(Unavailable::DatabaseUnreachable)
            }
            _ => None,
        }
    }

    /// True when the database refused a row because of a UNIQUE constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Turns a unique-constraint violation into a `Conflict` on `field`; passes other errors through.
pub(crate) fn unique_as_conflict(
    field: &str,
    detail: &str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    let field = field.to_string();
    let detail = detail.to_string();
    move |e| {
        let e = StoreError::from(e);
        if e.is_unique_violation() {
            StoreError::conflict(field, detail)
        } else {
            e
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why the store cannot serve a request for now (see [`StoreError::unavailable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The database's disk (or quota) is full: nothing was written.
    StorageFull,
    /// The database cannot be reached.
    DatabaseUnreachable,
    /// The database stayed locked or out of memory past the wait.
    Busy,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::StorageFull => "storage_full",
            Unavailable::DatabaseUnreachable => "database_unreachable",
            Unavailable::Busy => "database_busy",
        }
    }

    /// What the client is told.
    pub fn detail(self) -> &'static str {
        match self {
            Unavailable::StorageFull => {
                "the database's storage is full: nothing was written; try again once an operator \
                 has freed space"
            }
            Unavailable::DatabaseUnreachable => {
                "the database cannot be reached: nothing was written; try again shortly"
            }
            Unavailable::Busy => "the database is busy: nothing was written; try again shortly",
        }
    }
}
