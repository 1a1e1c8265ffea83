//! What an edge holds for every environment it serves, resident or not: the published document
//! as it came (gzip), the SDK feature fields beside it (gzip too), and the few fields every
//! lookup needs without compiling anything (client key, owners, revision, `updated_at`).
//!
//! This is the cold half of an environment: a few hundred bytes plus its compressed document.
//! The hot half, the [`EnvSnapshot`] that SDK requests are answered from (compiled rules,
//! pre-serialized `/flags/` bodies), is built from it on first request and kept only while
//! the memory budget allows ([`crate::resident`]). Edges following this one are served from
//! the cold half alone (revisions, documents, SDK feature fields), so a core fronting 100,000
//! environments does not compile them for its followers.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use serde::Deserialize;

use crate::snapshot::{EnvSnapshot, SnapshotError};

/// Heap bytes counted for an entry beyond its compressed bodies (the struct, its key and tag,
/// its slots in the registry's two maps).
const ENTRY_OVERHEAD: usize = 320;

/// The fields of a document read without parsing the rest (serde skips what it is not asked
/// for, allocating nothing for it).
#[derive(Deserialize)]
struct Head {
    api_key: String,
    #[serde(default)]
    updated_at: Option<String>,
    project: HeadProject,
}

#[derive(Deserialize)]
struct HeadProject {
    id: i64,
    #[serde(default)]
    organisation: Option<HeadOrganisation>,
}

#[derive(Deserialize)]
struct HeadOrganisation {
    id: i64,
}

/// One published revision of one environment, as held by the registry.
pub struct Published {
    pub environment_id: i64,
    pub project_id: i64,
    /// 0 for a document without an organisation.
    pub organisation_id: i64,
    pub revision: i64,
    pub api_key: String,
    /// The store's hash of the document body (without the revision).
    pub etag: String,
    /// An earlier published document has an `updated_at` in the same second.
    pub shares_second: bool,
    /// The environment's `updated_at`, epoch seconds (what real-time streams announce).
    pub updated_at: f64,
    /// The stored document (without identity overrides), gzip-compressed as published.
    pub document_gz: Bytes,
    /// The SDK fields of its features as published beside the document, gzip-compressed (as
    /// JSON they are larger than the whole compressed document).
    sdk_features_gz: Option<Bytes>,
    /// The compiled snapshot while resident ([`crate::resident`]).
    pub(crate) hot: ArcSwapOption<EnvSnapshot>,
    /// Served since the eviction clock last passed (the clock's second chance).
    pub(crate) referenced: AtomicBool,
    /// Replaced by a newer revision or removed: a snapshot built for it must not stay.
    pub(crate) retired: AtomicBool,
    /// Held while its snapshot is built, so concurrent first requests build it once. An async
    /// lock: the requests waiting for the build wait on their tasks, not on a worker thread;
    /// owned, so a build moved to a blocking thread keeps it until the snapshot is admitted,
    /// even if the request that started it goes away.
    pub(crate) building: Arc<tokio::sync::Mutex<()>>,
}

impl Published {
    /// Reads what every lookup needs from a published document (gzip JSON, as stored),
    /// without compiling it. Fails on a body that is not gzip or lacks those fields.
    pub fn new(
        environment_id: i64,
        revision: i64,
        etag: &str,
        document_gz: Bytes,
        shares_second: bool,
        sdk_features: Option<&str>,
    ) -> Result<Published, SnapshotError> {
        let json = crate::snapshot::gunzip(&document_gz).map_err(|source| SnapshotError::Gzip {
            environment_id,
            source,
        })?;
        let head: Head = serde_json::from_slice(&json).map_err(|source| SnapshotError::Json {
            environment_id,
            source,
        })?;
        drop(json);
        Ok(Published {
            environment_id,
            project_id: head.project.id,
            organisation_id: head.project.organisation.map_or(0, |o| o.id),
            revision,
            api_key: head.api_key,
            etag: etag.to_string(),
            shares_second,
            updated_at: crate::snapshot::parse_updated_at(head.updated_at.as_deref()),
            document_gz: shrink(document_gz),
            sdk_features_gz: sdk_features.map(gzip),
            hot: ArcSwapOption::empty(),
            referenced: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            building: Arc::default(),
        })
    }

    /// The cold half of a snapshot built elsewhere; returns it with the snapshot (whose copy
    /// of the SDK feature fields moves here, compressed).
    pub fn from_snapshot(mut snap: EnvSnapshot) -> (Published, EnvSnapshot) {
        let sdk = snap.sdk_features_json.take();
        let published = Published {
            environment_id: snap.environment_id,
            project_id: snap.project_id,
            organisation_id: snap.organisation_id,
            revision: snap.revision,
            api_key: snap.api_key.clone(),
            etag: snap.document_etag().to_string(),
            shares_second: snap.shares_second,
            updated_at: snap.updated_at,
            document_gz: snap.document_gz.clone(),
            sdk_features_gz: sdk.as_deref().map(gzip),
            hot: ArcSwapOption::empty(),
            referenced: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            building: Arc::default(),
        };
        (published, snap)
    }

    /// Compiles the snapshot SDK requests are answered from.
    pub fn build_snapshot(&self) -> Result<EnvSnapshot, SnapshotError> {
        let json = self.sdk_features_json();
        let sdk_features = flagstone_store::document::sdk_features::parse(json.as_deref())
            .map_err(|source| SnapshotError::SdkFeatures {
                environment_id: self.environment_id,
                source,
            })?;
        Ok(EnvSnapshot::build(
            self.environment_id,
            self.revision,
            &self.etag,
            self.document_gz.clone(),
            &sdk_features,
        )?
        .sharing_its_second(self.shares_second))
    }

    /// The SDK fields of its features as published (JSON), if they were.
    pub fn sdk_features_json(&self) -> Option<String> {
        let gz = self.sdk_features_gz.as_ref()?;
        let mut out = String::new();
        match flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut out) {
            Ok(_) => Some(out),
            // Compressed here from a `&str`: cannot fail short of memory corruption.
            Err(e) => {
                tracing::error!(environment = self.environment_id, error = %e, "SDK feature fields held in memory do not decompress");
                None
            }
        }
    }

    /// The compiled snapshot, if resident.
    pub fn resident(&self) -> Option<Arc<EnvSnapshot>> {
        self.hot.load_full()
    }

    pub fn is_resident(&self) -> bool {
        self.hot.load().is_some()
    }

    /// Heap bytes held whether resident or not.
    pub fn cold_bytes(&self) -> usize {
        ENTRY_OVERHEAD
            + self.api_key.len()
            + self.etag.len()
            + self.document_gz.len()
            + self.sdk_features_gz.as_ref().map_or(0, Bytes::len)
    }

    pub(crate) fn mark_referenced(&self) {
        // Read first: a hot entry stays marked, and its cache line is not written per request.
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }
}

/// `Bytes` holding exactly its length (a `Vec`'s spare capacity would be held for good).
fn shrink(b: Bytes) -> Bytes {
    if b.is_unique() {
        // Cheap when `b` came from an exact `Vec` (as from the store or a file).
        Bytes::from(Vec::from(b).into_boxed_slice())
    } else {
        b
    }
}

fn gzip(s: &str) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(s.len() / 4),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(s.as_bytes());
    Bytes::from(enc.finish().unwrap_or_default().into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(json: &str) -> Bytes {
        gzip(json)
    }

    #[test]
    fn reads_the_head_without_compiling() {
        let doc = r#"{"api_key":"k1","id":3,"updated_at":"1970-01-01T00:00:10Z",
            "feature_states":[{"whatever":[1,2,3]}],
            "project":{"id":7,"name":"p","organisation":{"id":9,"name":"o"},"segments":[]}}"#;
        let p = Published::new(3, 12, "tag", gz(doc), true, Some("{\"1\":{}}")).unwrap();
        assert_eq!(
            (
                p.api_key.as_str(),
                p.project_id,
                p.organisation_id,
                p.revision
            ),
            ("k1", 7, 9, 12)
        );
        assert_eq!(p.updated_at, 10.0);
        assert!(p.shares_second);
        assert_eq!(p.sdk_features_json().as_deref(), Some("{\"1\":{}}"));
        assert!(!p.is_resident());
        assert!(p.cold_bytes() > ENTRY_OVERHEAD + p.document_gz.len());
    }

    #[test]
    fn refuses_what_is_not_a_document() {
        assert!(matches!(
            Published::new(1, 1, "", Bytes::from_static(b"nope"), false, None),
            Err(SnapshotError::Gzip { .. })
        ));
        assert!(matches!(
            Published::new(1, 1, "", gz("{\"api_key\":1}"), false, None),
            Err(SnapshotError::Json { .. })
        ));
    }
}
