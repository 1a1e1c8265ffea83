//! Published documents: one row per environment in `environment_documents`, replaced only by a
//! newer revision, so a slow or late worker can never roll an environment back.

use std::io::Read;

use super::{BuiltDocument, ENCODING};
use crate::{clock::now_ms, sql, Result, Tx};

/// A published document as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredDocument {
    pub environment_id: i64,
    pub revision: i64,
    /// Compressed JSON, see `encoding`.
    pub body: Vec<u8>,
    pub encoding: String,
    pub etag: String,
    /// Uncompressed size.
    pub bytes: i64,
    pub compressed_bytes: i64,
    pub built_at: i64,
    pub build_ms: i64,
    /// The document's `updated_at` (Unix ms); NULL for documents stored before migration 0061.
    pub updated_at: Option<i64>,
    /// The `updated_at` of the document this one replaced, when known.
    pub previous_updated_at: Option<i64>,
    /// The SDK fields of the project's features ([`super::sdk_features`]); NULL for documents
    /// stored before migration 0064.
    pub sdk_features: Option<String>,
}

impl StoredDocument {
    /// Whether an earlier published document was updated in the same second as this one, so
    /// a whole-second `If-Modified-Since` cannot tell them apart.
    pub fn shares_second_with_previous(&self) -> bool {
        match (self.updated_at, self.previous_updated_at) {
            (Some(now), Some(before)) => now.div_euclid(1000) == before.div_euclid(1000),
            _ => false,
        }
    }

    /// The uncompressed JSON.
    pub fn json(&self) -> std::io::Result<Vec<u8>> {
        gunzip(&self.body)
    }
}

pub(crate) fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

/// Stores `doc` unless a document of the same or a newer revision is already there. Returns
/// whether it was stored. Atomic: readers see the old row or the new one.
pub async fn store_if_newer(tx: &mut Tx, doc: &BuiltDocument) -> Result<bool> {
    let stored = sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO environment_documents (environment_id, revision, body, encoding, etag, \
                 bytes, compressed_bytes, built_at, build_ms, updated_at, sdk_features) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (environment_id) DO UPDATE SET revision = excluded.revision, \
                 body = excluded.body, encoding = excluded.encoding, etag = excluded.etag, \
                 bytes = excluded.bytes, compressed_bytes = excluded.compressed_bytes, \
                 built_at = excluded.built_at, build_ms = excluded.build_ms, \
                 previous_updated_at = environment_documents.updated_at, \
                 updated_at = excluded.updated_at, sdk_features = excluded.sdk_features \
             WHERE environment_documents.revision < excluded.revision",
        )
        .bind(doc.environment_id)
        .bind(doc.revision)
        .bind(&doc.body)
        .bind(ENCODING)
        .bind(&doc.etag)
        .bind(doc.bytes)
        .bind(doc.body.len() as i64)
        .bind(now_ms())
        .bind(doc.build_ms)
        .bind(doc.updated_at)
        .bind(&doc.sdk_features)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(stored > 0)
}

/// The published document of an environment, if any.
pub async fn load(tx: &mut Tx, environment_id: i64) -> Result<Option<StoredDocument>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT environment_id, revision, body, encoding, etag, bytes, compressed_bytes, \
                 built_at, build_ms, updated_at, previous_updated_at, sdk_features \
             FROM environment_documents WHERE environment_id = $1",
        )
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    }))
}

/// The published documents of `environment_ids` (those that have one), in id order: an edge
/// that hears of many publishes at once reads them in one query instead of one each.
pub async fn load_many(tx: &mut Tx, environment_ids: &[i64]) -> Result<Vec<StoredDocument>> {
    let mut out = Vec::with_capacity(environment_ids.len());
    for part in environment_ids.chunks(500) {
        // Integers only: formatted into the statement, not bound (SQLite has no arrays).
        let list: Vec<String> = part.iter().map(i64::to_string).collect();
        let query = format!(
            "SELECT environment_id, revision, body, encoding, etag, bytes, compressed_bytes, \
                 built_at, build_ms, updated_at, previous_updated_at, sdk_features \
             FROM environment_documents WHERE environment_id IN ({}) ORDER BY environment_id",
            list.join(", ")
        );
        let rows: Vec<StoredDocument> = sql!(tx, |c| sqlx::query_as(&query).fetch_all(c).await?);
        out.extend(rows);
    }
    Ok(out)
}

/// The published revision of an environment, without reading its body.
pub async fn published_revision(tx: &mut Tx, environment_id: i64) -> Result<Option<i64>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT revision FROM environment_documents WHERE environment_id = $1")
            .bind(environment_id)
            .fetch_optional(c)
            .await?
    }))
}

/// `(environment_id, revision)` of every published document: the edge's safety net compares
/// these with what it holds (DESIGN §5).
pub async fn published_revisions(tx: &mut Tx) -> Result<Vec<(i64, i64)>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT environment_id, revision FROM environment_documents ORDER BY environment_id",
        )
        .fetch_all(c)
        .await?
    }))
}

/// Published documents of environments after `after_environment_id`, in id order, at most
/// `limit`: keyset pages, so an edge loads thousands of documents in a few queries rather than
/// one per environment.
pub async fn load_page(
    tx: &mut Tx,
    after_environment_id: i64,
    limit: i64,
) -> Result<Vec<StoredDocument>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT environment_id, revision, body, encoding, etag, bytes, compressed_bytes, \
                 built_at, build_ms, updated_at, previous_updated_at, sdk_features \
             FROM environment_documents WHERE environment_id > $1 \
             ORDER BY environment_id LIMIT $2",
        )
        .bind(after_environment_id)
        .bind(limit)
        .fetch_all(c)
        .await?
    }))
}
