//! Moving environments between Flagsmith and Flagstone: [`import`] takes a Flagsmith
//! environment document (the JSON of Flagsmith's `/api/v1/environment-document/`) and makes
//! the store hold it; [`export`] writes an environment back out as such a document, identity
//! overrides included. Import → export → import is lossless for everything the engine reads.
//!
//! # An import never changes what a user gets
//! Flagsmith's bucketing hashes ids: a percentage split hashes `str(segment.id)`, a variant is
//! picked by hashing the feature state's `django_id` (its `featurestate_uuid` when that is null
//! or 0), and variants are walked in the order of their value ids. Those ids are kept apart from
//! the row ids (`segments.hash_id`, `feature_states.hash_id`, `segment_overrides.hash_id`,
//! `*.mv_value_ids`; migration 0060) and the document builder emits them, so for any document
//! and any identity, Flagstone's flags are the ones Flagsmith's engine gives on the original
//! document — whatever ids the installation already uses. Rows created in Flagstone hash their
//! row id, and every id sequence is moved past every imported hashing id ([`ids`]), so the two
//! never collide. Imported rows still take the document's id as row id when it is free.
//!
//! # Where a document goes ([`target`])
//! 1. An environment with the document's `api_key` exists: it is replaced, in its project.
//! 2. The user names the project (`--project`, `?project=`): the environment is created there.
//! 3. A project first imported from the same *source* with the same project id: created there.
//!    The source is the label of the installation (`--source`, `?source=`); without one, each
//!    import run gets a fresh label (reported), so nothing merges by coincidence — two
//!    installations' "Web" projects, or two unrelated documents, each get their own project.
//! 4. Otherwise a new project, in the named organisation (`--organisation`), the organisation
//!    first imported from the same source with the same id, or a new one. An existing
//!    organisation is never modified.
//!
//! # What is replaced
//! * **Project level.** A Flagsmith document lists every feature and every segment of its
//!   project, so after an import the project's features and segments are exactly the
//!   document's. Features and segments are matched by their id in the source when the
//!   document comes from the project's source ([`IdSpace`]: `features.source_id`,
//!   `segments.hash_id`), then by name (features ignoring case); options by key, then value. Matched rows are updated, missing ones created, the project's others deleted (with
//!   their overrides in every environment). Options the document does not list are kept but
//!   get a 0 % allocation in this environment.
//! * **Environment level.** This environment's feature states, all its segment overrides and
//!   all its identity overrides are replaced by the document's. Identities are created as
//!   needed; existing identities and their traits are kept.
//! * **Reported.** Before writing, the import notes what every environment of the target
//!   project serves ([`served`]); [`ImportReport::changed_environments`] lists those whose
//!   flags change, feature by feature. `dry_run` does everything, reports, and rolls back.
//! * **One change.** Everything happens in one [`crate::Change`]: one audit entry
//!   ("Imported environment document"), revisions of every environment of the project bumped
//!   and their publication requested. Every limit of the target project (defaults for a new
//!   one) is checked before the first write, and the built document must fit
//!   `max_document_bytes`; a refused import writes nothing.
//!
//! # Any size from a file
//! [`import_file`] streams a file's identity overrides (most of a large document) instead of
//! holding them: peak memory does not grow with their number ([`stream`], [`identities`];
//! figures in RELIABILITY.md).

mod env_rows;
mod export;
mod identities;
mod ids;
mod import;
mod plan;
mod served;
mod states;
mod stream;
mod target;
mod write;

use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};
pub use export::{export, export_to_vec, ExportSummary};
pub use import::{import, import_file};
pub use served::ChangedEnvironment;
pub use target::TargetChoice;

/// How an import chooses its target and whether it writes.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct ImportOptions {
    /// Create (or replace) the environment in this project.
    #[serde(default)]
    pub project: Option<i64>,
    /// Create a new project in this organisation.
    #[serde(default)]
    pub organisation: Option<i64>,
    /// A label for the installation the document comes from (e.g. its URL): documents of the
    /// same source and project id go into the same project. Generated when absent.
    #[serde(default)]
    pub source: Option<String>,
    /// Check and report, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Whether a document's feature and segment ids can be compared with the ids the target
/// project's rows had in their source: only when both come from the same installation (ids of
/// two installations are unrelated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSpace {
    SameSource,
    Foreign,
}

/// Longest source label.
pub const MAX_SOURCE_CHARS: usize = 200;

fn validate_source(s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_SOURCE_CHARS || s.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "source",
            format!("must be 1-{MAX_SOURCE_CHARS} characters without control characters"),
        ));
    }
    Ok(s.to_string())
}

/// The audit log line of an import.
pub const AUDIT_LOG: &str = "Imported environment document";

/// What an import did.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Organisation id.
    pub organisation: i64,
    /// Project id.
    pub project: i64,
    /// Environment id.
    pub environment: i64,
    /// The environment's client key (the document's `api_key`).
    pub api_key: String,
    /// True when the environment was created, false when it was replaced.
    pub created: bool,
    /// Why the document went where it did.
    pub target: TargetChoice,
    /// The source label recorded on the project: pass it as `source` to import further
    /// environments of the same project into it.
    pub source: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Features in the project after the import.
    pub features: usize,
    /// Segments in the project after the import.
    pub segments: usize,
    /// Segment overrides of the environment.
    pub segment_overrides: usize,
    /// Identities with overrides in the environment.
    pub identity_overrides: usize,
    /// Features and segments of the project the document did not list, deleted.
    pub deleted_features: usize,
    pub deleted_segments: usize,
    /// Existing environments whose served flags change (the target environment too, when it
    /// existed), with the features concerned.
    pub changed_environments: Vec<ChangedEnvironment>,
    /// What the import changed in the document to store it (a duplicate segment name).
    pub warnings: Vec<String>,
}

/// Parses a document, naming the problem (serde's message carries the field, line and column).
pub fn parse_document(bytes: &[u8]) -> Result<flagstone_engine::EnvironmentDocument> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::invalid("document", e.to_string()))
}

/// Parses a document from a reader, without reading it into one buffer first (but holding the
/// whole document: [`import_file`] is the import that does not).
pub fn read_document(r: impl std::io::Read) -> Result<flagstone_engine::EnvironmentDocument> {
    serde_json::from_reader(std::io::BufReader::new(r))
        .map_err(|e| StoreError::invalid("document", e.to_string()))
}
