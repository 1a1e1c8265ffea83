//! Published documents: one row per environment in `environment_documents`, replaced only by a
//! newer revision, so a slow or late worker can never roll an environment back.

use std::io::Read;

use super::{BuiltDocument, ENCODING};
use crate::id_list::{any_of, IdList};
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
    Ok(store_many_if_newer(tx, &[doc]).await?[0])
}

/// What replaces an environment's row when a newer document arrives (both backends).
const ON_CONFLICT: &str = "ON CONFLICT (environment_id) DO UPDATE SET \
         revision = excluded.revision, body = excluded.body, encoding = excluded.encoding, \
         etag = excluded.etag, bytes = excluded.bytes, \
         compressed_bytes = excluded.compressed_bytes, built_at = excluded.built_at, \
         build_ms = excluded.build_ms, previous_updated_at = environment_documents.updated_at, \
         updated_at = excluded.updated_at, sdk_features = excluded.sdk_features \
     WHERE environment_documents.revision < excluded.revision \
     RETURNING environment_id";

/// [`store_if_newer`] for several documents of distinct environments in one statement (a
/// worker finishing a group of builds writes them with one round trip); each is stored only if
/// newer than its environment's, exactly as alone. Returns, per document, whether it was stored.
///
/// PostgreSQL gets the documents as arrays (`UNNEST`), so the statement's text, prepared once
/// per connection, is the same for any number of documents; SQLite, in-process, gets one
/// `VALUES` row per document in an unprepared statement.
pub async fn store_many_if_newer(tx: &mut Tx, docs: &[&BuiltDocument]) -> Result<Vec<bool>> {
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let built_at = now_ms();
    let stored: Vec<i64> = match tx {
        Tx::Postgres(t) => {
            let query = format!(
                "INSERT INTO environment_documents (environment_id, revision, body, encoding, \
                     etag, bytes, compressed_bytes, built_at, build_ms, updated_at, sdk_features) \
                 SELECT d.environment_id, d.revision, d.body, $1, d.etag, d.bytes, \
                     d.compressed_bytes, $2, d.build_ms, d.updated_at, d.sdk_features \
                 FROM UNNEST($3::bigint[], $4::bigint[], $5::bytea[], $6::text[], $7::bigint[], \
                     $8::bigint[], $9::bigint[], $10::bigint[], $11::text[]) \
                     AS d(environment_id, revision, body, etag, bytes, compressed_bytes, \
                         build_ms, updated_at, sdk_features) {ON_CONFLICT}"
            );
            let column =
                |f: fn(&BuiltDocument) -> i64| -> Vec<i64> { docs.iter().map(|d| f(d)).collect() };
            let environment_ids: Vec<i64> = column(|d| d.environment_id);
            let revisions: Vec<i64> = column(|d| d.revision);
            let bytes: Vec<i64> = column(|d| d.bytes);
            let compressed: Vec<i64> = column(|d| d.body.len() as i64);
            let build_ms: Vec<i64> = column(|d| d.build_ms);
            let updated_at: Vec<i64> = column(|d| d.updated_at);
            let bodies: Vec<&[u8]> = docs.iter().map(|d| d.body.as_slice()).collect();
            let etags: Vec<&str> = docs.iter().map(|d| d.etag.as_str()).collect();
            let sdk: Vec<&str> = docs.iter().map(|d| d.sdk_features.as_str()).collect();
            sqlx::query_scalar(&query)
                .bind(ENCODING)
                .bind(built_at)
                .bind(environment_ids)
                .bind(revisions)
                .bind(bodies)
                .bind(etags)
                .bind(bytes)
                .bind(compressed)
                .bind(build_ms)
                .bind(updated_at)
                .bind(sdk)
                .fetch_all(&mut **t)
                .await?
        }
        Tx::Sqlite(t, _) => {
            let query = format!(
                "INSERT INTO environment_documents (environment_id, revision, body, encoding, \
                     etag, bytes, compressed_bytes, built_at, build_ms, updated_at, sdk_features) \
                 VALUES {} {ON_CONFLICT}",
                crate::db::values_rows(docs.len(), 11)
            );
            let mut q = sqlx::query_scalar(&query).persistent(docs.len() == 1);
            for doc in docs {
                q = q
                    .bind(doc.environment_id)
                    .bind(doc.revision)
                    .bind(&doc.body)
                    .bind(ENCODING)
                    .bind(&doc.etag)
                    .bind(doc.bytes)
                    .bind(doc.body.len() as i64)
                    .bind(built_at)
                    .bind(doc.build_ms)
                    .bind(doc.updated_at)
                    .bind(&doc.sdk_features);
            }
            q.fetch_all(&mut **t).await?
        }
    };
    Ok(docs
        .iter()
        .map(|d| stored.contains(&d.environment_id))
        .collect())
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
    let query = format!(
        "SELECT environment_id, revision, body, encoding, etag, bytes, compressed_bytes, \
             built_at, build_ms, updated_at, previous_updated_at, sdk_features \
         FROM environment_documents WHERE {} ORDER BY environment_id",
        any_of(tx.backend(), "environment_id", 1)
    );
    for part in environment_ids.chunks(500) {
        let ids = IdList(part.to_vec());
        let rows: Vec<StoredDocument> = sql!(tx, |c| sqlx::query_as(&query)
            .bind(&ids)
            .fetch_all(c)
            .await?);
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
