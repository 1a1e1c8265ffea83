//! Moving environments between Flagsmith and Flagstone: [`import`] takes a Flagsmith
//! environment document (the JSON of Flagsmith's `/api/v1/environment-document/`) and makes
//! the store hold it; [`export`] writes an environment back out as such a document, identity
//! overrides included. Import → export → import is lossless for everything the engine reads.
//!
//! # What "create or replace" means
//! * **Target.** If an environment with the document's `api_key` exists, it is the target and
//!   its project and organisation are updated. Otherwise, if a project with the document's
//!   project id *and* name exists (another environment of the same Flagsmith project was
//!   imported before), or one with that name in the organisation of the same id and name, the
//!   environment is created there. Otherwise a new organisation (unless one with the same id
//!   and name exists), project and environment are created. The `api_key` is kept as the
//!   client key.
//! * **Project level.** A Flagsmith document lists every feature and every segment of its
//!   project, so after an import the project's features and segments are exactly the
//!   document's: matched by id (within the project), then by name (features ignoring case),
//!   updated; missing ones created; the project's others deleted (with their overrides in every
//!   environment). Multivariate options are matched by id, then key, then value; options the
//!   document does not list are kept but get a 0 % allocation in this environment.
//! * **Environment level.** This environment's feature states, all its segment overrides and
//!   all its identity overrides are replaced by the document's. Identities are created as
//!   needed; existing identities and their traits are kept.
//! * **One change.** Everything happens in one [`crate::Change`]: one audit entry
//!   ("Imported environment document"), revisions of every environment of the project bumped
//!   and their publication requested. Every limit of the target project (defaults for a new
//!   one) is checked before the first write, and the built document must fit
//!   `max_document_bytes`; a refused import writes nothing.
//!
//! # Keeping every user in their bucket
//! Percentage splits hash `str(segment.id)`, multivariate bucketing hashes the feature state's
//! `django_id`, and a variant's order is its value `id`. Flagstone emits its row ids for these,
//! so the import inserts rows **with the document's ids** whenever they are free (both SQLite
//! and PostgreSQL accept explicit ids; PostgreSQL sequences are moved past them afterwards).
//! Where that is impossible (an id already used elsewhere, a `django_id` of null or 0 so
//! Flagsmith hashed the uuid, variants whose value ids order differently from their option
//! ids), the import still succeeds and [`ImportReport::warnings`] names each affected entity.

mod env_rows;
mod export;
mod ids;
mod import;
mod plan;
mod states;
mod write;

use serde::Serialize;

use crate::{Result, StoreError};
pub use export::{export, export_to_vec, ExportSummary};
pub use import::import;

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
    /// Where an id that feeds bucketing could not be kept (see the module docs).
    pub warnings: Vec<String>,
}

/// Parses a document, naming the problem (serde's message carries the field, line and column).
pub fn parse_document(bytes: &[u8]) -> Result<flagstone_engine::EnvironmentDocument> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::invalid("document", e.to_string()))
}

/// Parses a document from a reader (a file), without reading it into one buffer first.
pub fn read_document(r: impl std::io::Read) -> Result<flagstone_engine::EnvironmentDocument> {
    serde_json::from_reader(std::io::BufReader::new(r))
        .map_err(|e| StoreError::invalid("document", e.to_string()))
}
