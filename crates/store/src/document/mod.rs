//! Environment documents: building them from the store, streamed and within a byte budget
//! ([`build`]), and storing and reading the published, compressed result ([`stored`]).
//! Identity overrides are not part of the document; [`identity_overrides`] streams them for the
//! SDK environment-document endpoint, which appends them.
//!
//! A build reads everything inside one read transaction (a snapshot on PostgreSQL) and records
//! the environment's revision first, so the document is exactly that revision. Rows are fetched
//! with cursors in document order and written straight into the output; the only buffer is the
//! gzip-compressed body, and the build stops the moment the JSON passes the budget.

mod builder;
pub mod fixture;
pub mod identity_overrides;
mod rows;
pub mod sdk_features;
mod sink;
pub mod stored;
mod writer;

use std::time::Instant;

use futures_util::TryStreamExt;

use crate::{sql, Backend, Limits, Store, StoreError, Tx};
use rows::{Header, Row, SegmentRow};
use sink::BudgetedSink;
use writer::DocumentWriter;

pub use builder::Builder;
use builder::ProjectCache;
pub use sdk_features::{SdkFeature, SdkFeatures};
pub use stored::{
    load, load_many, load_page, published_revisions, store_if_newer, store_many_if_newer,
    StoredDocument,
};

/// Every document ends with these bytes: `identity_overrides` is written last and empty, so the
/// SDK endpoint can replace the tail and stream the overrides in its place.
pub const IDENTITY_OVERRIDES_TAIL: &[u8] = b"\"identity_overrides\":[]}";

/// How the stored body is encoded. gzip, because HTTP clients accept it as `Content-Encoding`
/// and the edge can serve it without recompressing.
pub const ENCODING: &str = "gzip";

/// Why a build did not produce a document. `TooLarge` and `Corrupt` data are permanent until the
/// environment changes; database errors are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("environment not found")]
    EnvironmentNotFound,
    #[error("document would exceed {attempted} bytes (budget {budget})")]
    TooLarge { attempted: u64, budget: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BuildError {
    /// True when rebuilding the same revision would fail the same way.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            BuildError::TooLarge { .. }
                | BuildError::EnvironmentNotFound
                | BuildError::Store(StoreError::Corrupt { .. })
        )
    }
}

impl From<sqlx::Error> for BuildError {
    fn from(e: sqlx::Error) -> Self {
        BuildError::Store(StoreError::Database(e))
    }
}

/// Build settings. The budget defaults to the project's `max_document_bytes` limit.
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    pub max_document_bytes: Option<u64>,
    /// gzip level, 0-9. Low levels are several times faster and still shrink documents ~8x.
    pub compression_level: u32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            max_document_bytes: None,
            compression_level: 3,
        }
    }
}

/// A built document, ready to store.
#[derive(Clone, Debug)]
pub struct BuiltDocument {
    pub environment_id: i64,
    /// The environment revision the document was built from.
    pub revision: i64,
    /// gzip-compressed JSON.
    pub body: Vec<u8>,
    /// Hash of the uncompressed JSON.
    pub etag: String,
    /// Uncompressed size.
    pub bytes: i64,
    pub build_ms: i64,
    /// The document's `updated_at` (the environment's, Unix ms).
    pub updated_at: i64,
    /// The SDK fields of the project's features, published beside the document
    /// ([`sdk_features`]).
    pub sdk_features: String,
}

impl BuiltDocument {
    /// The uncompressed JSON.
    pub fn json(&self) -> std::io::Result<Vec<u8>> {
        stored::gunzip(&self.body)
    }
}

/// Builds the document of `environment_id` from a consistent snapshot of the store. A worker
/// building several environments shares one snapshot between them ([`Builder`]).
pub async fn build(
    store: &Store,
    environment_id: i64,
    opts: &BuildOptions,
) -> Result<BuiltDocument, BuildError> {
    // Read-only: nothing to commit; dropping the builder rolls back and releases the snapshot.
    Builder::open(store)
        .await?
        .build(environment_id, opts)
        .await
}

/// A read transaction in which every query of a build sees the same committed state as the
/// revision it reads (SQLite's read transactions already do).
async fn snapshot(store: &Store) -> Result<Tx, BuildError> {
    Ok(store.read_snapshot().await?)
}

/// Builds inside a transaction the caller opened (it should be a snapshot).
pub async fn build_in(
    tx: &mut Tx,
    environment_id: i64,
    opts: &BuildOptions,
) -> Result<BuiltDocument, BuildError> {
    let mut projects = ProjectCache::default();
    build_with(
        tx,
        &mut projects,
        environment_id,
        opts,
        SegmentsShape::PerSegment,
    )
    .await
}

/// How the segments part of the document is read.
#[derive(Clone, Copy, PartialEq)]
enum SegmentsShape {
    /// One row per segment, its overrides aggregated through `segment_overrides_build`.
    PerSegment,
    /// The earlier single sorted UNION of segments and overrides (the test reference).
    #[cfg(feature = "testing")]
    Union,
}

/// [`build`] with the segments read by the earlier single sorted UNION query: the reference
/// the tests compare the per-segment reads against, byte for byte.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub async fn build_with_union_query(
    store: &Store,
    environment_id: i64,
    opts: &BuildOptions,
) -> Result<BuiltDocument, BuildError> {
    let mut tx = snapshot(store).await?;
    let mut projects = ProjectCache::default();
    build_with(
        &mut tx,
        &mut projects,
        environment_id,
        opts,
        SegmentsShape::Union,
    )
    .await
}

async fn build_with(
    tx: &mut Tx,
    projects: &mut ProjectCache,
    environment_id: i64,
    opts: &BuildOptions,
    shape: SegmentsShape,
) -> Result<BuiltDocument, BuildError> {
    let started = Instant::now();
    let header: Option<Header> = sql!(&mut *tx, |c| {
        sqlx::query_as(rows::HEADER)
            .bind(environment_id)
            .fetch_optional(c)
            .await?
    });
    let header = header.ok_or(BuildError::EnvironmentNotFound)?;
    let limits = Limits::from_stored(&header.limits)?;
    let budget = opts
        .max_document_bytes
        .unwrap_or(limits.max_document_bytes.max(0) as u64);
    let mut w = DocumentWriter::new(BudgetedSink::new(budget, opts.compression_level));

    // The project's features in one pass: the SDK fields published beside the document and
    // the server-key-only ids written into it.
    let features = projects.features(tx, header.project_id).await?;
    w.header(&header)?;
    for &id in &features.server_key_only {
        w.server_key_only_feature(id)?;
    }
    w.begin_segments()?;
    #[cfg(feature = "testing")]
    if shape == SegmentsShape::Union {
        sql!(&mut *tx, |c| {
            let mut rows = sqlx::query_as::<_, Row>(rows::SEGMENTS_UNION)
                .bind(environment_id)
                .bind(header.project_id)
                .fetch(c);
            while let Some(row) = rows.try_next().await? {
                w.segment_row(row)?;
            }
        });
    }
    if shape == SegmentsShape::PerSegment {
        let query = match tx.backend() {
            Backend::Sqlite => rows::SEGMENTS_SQLITE,
            Backend::Postgres => rows::SEGMENTS_POSTGRES,
        };
        sql!(&mut *tx, |c| {
            let mut rows = sqlx::query_as::<_, SegmentRow>(query)
                .bind(environment_id)
                .bind(header.project_id)
                .fetch(c);
            while let Some(row) = rows.try_next().await? {
                w.segment_with_overrides(row)?;
            }
        });
    }
    w.begin_feature_states()?;
    sql!(&mut *tx, |c| {
        let mut rows = sqlx::query_as::<_, Row>(rows::STATES)
            .bind(environment_id)
            .fetch(c);
        while let Some(row) = rows.try_next().await? {
            w.state_row(row)?;
        }
    });
    let out = w.finish(&header)?.finish().map_err(|e| {
        BuildError::Store(StoreError::Corrupt {
            what: "document output",
            detail: e.to_string(),
        })
    })?;
    Ok(BuiltDocument {
        environment_id,
        revision: header.revision,
        body: out.body,
        etag: out.etag,
        bytes: out.bytes as i64,
        build_ms: started.elapsed().as_millis() as i64,
        updated_at: header.updated_at,
        sdk_features: features.sdk.clone(),
    })
}
