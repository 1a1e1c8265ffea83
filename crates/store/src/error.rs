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
