//! Several builds in one snapshot. A worker working through a burst builds the documents of
//! many environments, often of one project; each build on its own opens a read transaction,
//! reads its project's features (two statements) and rolls back. A [`Builder`] holds one
//! snapshot for a run of builds and reads each project's features once in it, so a build costs
//! its environment's own statements only (header, segments, states).
//!
//! Every document a builder makes is exactly the one [`super::build`] would make at the
//! snapshot's moment: the features read once are read in the same snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sdk_features::{self, ProjectFeatures};
use super::{build_with, snapshot, BuildError, BuildOptions, BuiltDocument, SegmentsShape};
use crate::{Store, Tx};

/// A read snapshot and what its builds have read of their projects (see the module docs).
/// Dropping it rolls back and releases the snapshot.
pub struct Builder {
    tx: Tx,
    projects: ProjectCache,
    opened: Instant,
}

impl Builder {
    /// Opens a snapshot of `store` for builds.
    pub async fn open(store: &Store) -> Result<Builder, BuildError> {
        Ok(Builder {
            tx: snapshot(store).await?,
            projects: ProjectCache::default(),
            opened: Instant::now(),
        })
    }

    /// Builds the document of `environment_id` as it is in this snapshot.
    ///
    /// After an error other than [`BuildError::EnvironmentNotFound`] the snapshot may be
    /// unusable (PostgreSQL refuses every statement of a transaction after a failed one, and a
    /// build stopped over budget leaves its query unfinished): open a new builder.
    pub async fn build(
        &mut self,
        environment_id: i64,
        opts: &BuildOptions,
    ) -> Result<BuiltDocument, BuildError> {
        build_with(
            &mut self.tx,
            &mut self.projects,
            environment_id,
            opts,
            SegmentsShape::PerSegment,
        )
        .await
    }

    /// How long ago the snapshot was taken. A long-held snapshot holds back PostgreSQL's
    /// cleanup of old row versions, and its builds grow staler: callers open a new one after a
    /// while.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }
}

/// Each project's features as read in one snapshot, read at most once.
#[derive(Default)]
pub(super) struct ProjectCache {
    read: HashMap<i64, Arc<ProjectFeatures>>,
}

impl ProjectCache {
    /// The features of `project_id`, read through `tx` the first time.
    pub(super) async fn features(
        &mut self,
        tx: &mut Tx,
        project_id: i64,
    ) -> Result<Arc<ProjectFeatures>, BuildError> {
        if let Some(f) = self.read.get(&project_id) {
            return Ok(f.clone());
        }
        let f = Arc::new(sdk_features::read(tx, project_id).await?);
        self.read.insert(project_id, f.clone());
        Ok(f)
    }
}
