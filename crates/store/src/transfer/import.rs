//! The import itself: resolve the target ([`super::target`]), check the document against its
//! project's limits ([`super::plan`]), note what the project's environments serve
//! ([`super::served`]), write everything in one [`Change`] ([`super::write`]), report which
//! environments' flags changed, and refuse the lot if the resulting environment document would
//! not fit `max_document_bytes`. A dry run does all of it and rolls back. Entry points:
//! [`import`] for a document in memory, [`import_file`] for a file of any size.
//!
//! # Identity overrides are read twice
//! They are most of a large document, so they are never held together: a first read checks
//! them one by one (registering the features they name) before anything is written, a second
//! one writes them in batches inside the same change. From a file both reads are streams
//! ([`super::stream`]); a refused override — on either read — still refuses the whole import.

use std::borrow::Cow;
use std::path::Path;

use flagstone_engine::{EnvironmentDocument, IdentityOverride};
use serde_json::json;
use tokio::sync::mpsc;

use super::identities::{self, PlanIdentity};
use super::ids::{insert_with_id, Ids};
use super::plan::begin;
use super::plan::Plan;
use super::served::{self, ChangedEnvironment};
use super::stream::{self, Stamp};
use super::target::{resolve, Target, TargetChoice};
use super::{write, ImportOptions, ImportReport, AUDIT_LOG};
use crate::document::{self, BuildError, BuildOptions};
use crate::{
    clock::now_ms, projects, sql, Actor, AuditEntry, Change, LimitName, Limits, Result, Store,
    StoreError,
};

/// Imports `doc` as one change made by `actor`; see the module docs of [`super`] for what is
/// replaced. With `opts.dry_run` nothing is written and the report says what would happen.
pub async fn import(
    store: &Store,
    actor: &Actor,
    doc: &EnvironmentDocument,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let mut ch = store.change(actor).await?;
    let report = import_in(
        &mut ch,
        doc,
        Overrides::Listed(&doc.identity_overrides),
        opts,
    )
    .await?;
    if !opts.dry_run {
        ch.commit().await?;
    }
    // A dry run's change is dropped here: rolled back.
    Ok(report)
}

/// Imports the document in the file at `path` like [`import`] does, without holding it:
/// memory stays bounded whatever the number of identity overrides (see the module docs).
/// The file is read three times and must not change meanwhile (the import is refused if it
/// did); a stream such as standard input is copied to a file first.
pub async fn import_file(
    store: &Store,
    actor: &Actor,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let stamp = Stamp::of(path)?;
    let header = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || stream::read_header(&path))
            .await
            .map_err(|e| StoreError::invalid("document", e.to_string()))??
    };
    let mut ch = store.change(actor).await?;
    let report = import_in(&mut ch, &header, Overrides::File(path), opts).await?;
    if Stamp::of(path)? != stamp {
        return Err(stream::changed());
    }
    if !opts.dry_run {
        ch.commit().await?;
    }
    Ok(report)
}

/// Where a document's identity overrides come from.
#[derive(Clone, Copy)]
pub(crate) enum Overrides<'a> {
    /// The document's own list (a document parsed in memory).
    Listed(&'a [IdentityOverride]),
    /// The file's `identity_overrides`, streamed (the document has none of its own).
    File(&'a Path),
}

/// One read of the identity overrides, batch by batch.
enum Reader<'a> {
    Listed(std::slice::Chunks<'a, IdentityOverride>),
    File(mpsc::Receiver<Result<stream::Batch>>),
}

impl<'a> Reader<'a> {
    fn open(from: Overrides<'a>) -> Reader<'a> {
        match from {
            Overrides::Listed(list) => Reader::Listed(list.chunks(stream::BATCH)),
            Overrides::File(path) => Reader::File(stream::overrides(path)),
        }
    }

    async fn next(&mut self) -> Result<Option<Cow<'a, [IdentityOverride]>>> {
        match self {
            Reader::Listed(chunks) => Ok(chunks.next().map(Cow::Borrowed)),
            Reader::File(rx) => match rx.recv().await {
                Some(batch) => Ok(Some(Cow::Owned(batch?))),
                None => Ok(None),
            },
        }
    }
}

/// Creates or updates the organisation, project and environment; returns their ids.
async fn write_header(
    ch: &mut Change,
    ids: &mut Ids,
    doc: &EnvironmentDocument,
    t: &Target,
    source: &str,
) -> Result<(i64, i64, i64)> {
    let now = now_ms();
    let tx = ch.tx();
    let org = doc.project.organisation.as_ref();
    let org_name = org.map_or("Imported", |o| o.name.trim()).to_string();
    let (analytics, stop, persist) = org.map_or((false, false, true), |o| {
        (
            o.feature_analytics,
            o.stop_serving_flags,
            o.persist_trait_data,
        )
    });
    // An existing organisation is left as it is: its settings (stop_serving_flags, …) apply
    // to every project in it, which this import does not own.
    let organisation = match t.organisation {
        Some(id) => id,
        None => {
            let want = org.map(|o| o.id).filter(|id| *id > 0);
            insert_with_id!(
                tx,
                ids,
                "organisations",
                [
                    "name",
                    "stop_serving_flags",
                    "persist_trait_data",
                    "feature_analytics",
                    "import_source",
                    "import_source_id",
                    "created_at"
                ],
                want,
                |q| q
                    .bind(&org_name)
                    .bind(stop)
                    .bind(persist)
                    .bind(analytics)
                    .bind(source)
                    .bind(org.map(|o| o.id))
                    .bind(now)
            )
            .0
        }
    };
    let p = &doc.project;
    let project_name = p.name.trim().to_string();
    // After the import the project's segments carry this source's ids, so it is this
    // source's project from now on. A project the user named keeps its name.
    let project = match t.project {
        Some(id) => {
            let keep_name = t.choice == TargetChoice::NamedProject;
            sql!(&mut *tx, |c| {
                sqlx::query(
                    "UPDATE projects SET name = CASE WHEN $5 THEN name ELSE $2 END, \
                         hide_disabled_flags = $3, enable_realtime_updates = $4, \
                         import_source = $6, import_source_id = $7 WHERE id = $1",
                )
                .bind(id)
                .bind(&project_name)
                .bind(p.hide_disabled_flags)
                .bind(p.enable_realtime_updates)
                .bind(keep_name)
                .bind(source)
                .bind(p.id)
                .execute(c)
                .await?
                .rows_affected()
            });
            id
        }
        None => {
            let want = Some(p.id).filter(|id| *id > 0);
            insert_with_id!(
                tx,
                ids,
                "projects",
                [
                    "organisation_id",
                    "name",
                    "hide_disabled_flags",
                    "enable_realtime_updates",
                    "import_source",
                    "import_source_id",
                    "created_at"
                ],
                want,
                |q| q
                    .bind(organisation)
                    .bind(&project_name)
                    .bind(p.hide_disabled_flags)
                    .bind(p.enable_realtime_updates)
                    .bind(source)
                    .bind(p.id)
                    .bind(now)
            )
            .0
        }
    };
    let env_name = doc.name.trim().to_string();
    let environment = match t.environment {
        Some(id) => {
            sql!(&mut *tx, |c| {
                sqlx::query(
                    "UPDATE environments SET name = $2, allow_client_traits = $3, \
                         hide_disabled_flags = $4, hide_sensitive_data = $5, \
                         use_identity_composite_key_for_hashing = $6, \
                         use_identity_overrides_in_local_eval = $7, updated_at = $8 WHERE id = $1",
                )
                .bind(id)
                .bind(&env_name)
                .bind(doc.allow_client_traits)
                .bind(doc.hide_disabled_flags)
                .bind(doc.hide_sensitive_data)
                .bind(doc.use_identity_composite_key_for_hashing)
                .bind(doc.use_identity_overrides_in_local_eval)
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            });
            id
        }
        None => {
            let want = Some(doc.id).filter(|id| *id > 0);
            insert_with_id!(
                tx,
                ids,
                "environments",
                [
                    "project_id",
                    "name",
                    "api_key",
                    "allow_client_traits",
                    "hide_disabled_flags",
                    "hide_sensitive_data",
                    "use_identity_composite_key_for_hashing",
                    "use_identity_overrides_in_local_eval",
                    "revision",
                    "updated_at",
                    "created_at"
                ],
                want,
                |q| q
                    .bind(project)
                    .bind(&env_name)
                    .bind(&doc.api_key)
                    .bind(doc.allow_client_traits)
                    .bind(doc.hide_disabled_flags)
                    .bind(doc.hide_sensitive_data)
                    .bind(doc.use_identity_composite_key_for_hashing)
                    .bind(doc.use_identity_overrides_in_local_eval)
                    .bind(1i64)
                    .bind(now)
                    .bind(now)
            )
            .0
        }
    };
    Ok((organisation, project, environment))
}

/// Everything but the commit; on `Err` the caller drops the change and nothing is written.
pub(crate) async fn import_in(
    ch: &mut Change,
    doc: &EnvironmentDocument,
    overrides: Overrides<'_>,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let source = match &opts.source {
        Some(s) => super::validate_source(s)?,
        None => format!("import-{}", uuid::Uuid::new_v4().simple()),
    };
    let target = resolve(ch, doc, opts, &source).await?;
    let limits = match target.project {
        Some(p) => projects::limits(ch.tx(), p).await?,
        None => Limits::default(),
    };
    let mut planner = begin(doc, &limits)?;
    let mut reader = Reader::open(overrides);
    let mut i = 0;
    while let Some(batch) = reader.next().await? {
        for io in batch.iter() {
            planner.identity(i, io)?;
            i += 1;
        }
    }
    let mut plan = planner.finish()?;
    let before = match target.environment {
        Some(env) => Some(summary(ch, env).await?),
        None => None,
    };
    let served_before = match target.project {
        Some(p) => served_by_project(ch, p).await?,
        None => Vec::new(),
    };
    let mut ids = Ids::default();
    let (organisation, project, environment) =
        write_header(ch, &mut ids, doc, &target, &source).await?;
    // Segments the import rewrites are versioned as the importer's change.
    let segments_before = crate::segments::versions::before_rewrite(ch, project).await?;
    let written = write::rows(
        ch.tx(),
        &mut ids,
        &mut plan,
        target.space,
        project,
        environment,
    )
    .await?;
    write_identities(
        ch,
        &plan,
        &limits,
        overrides,
        &written.features,
        environment,
    )
    .await?;
    ids.bump_sequences(ch.tx()).await?;
    crate::segments::versions::after_rewrite(ch, project, &segments_before).await?;
    let mut changed_environments = Vec::new();
    for (id, fp) in served_before {
        let after = served::fingerprint(ch.tx(), id).await?;
        let features = served::changed_features(&fp, &after);
        if !features.is_empty() {
            changed_environments.push(ChangedEnvironment {
                id,
                name: fp.name,
                api_key: fp.api_key,
                features,
            });
        }
    }

    let report = ImportReport {
        organisation,
        project,
        environment,
        api_key: doc.api_key.clone(),
        created: target.environment.is_none(),
        target: target.choice,
        source,
        dry_run: opts.dry_run,
        features: plan.features.len(),
        segments: plan.segments.len(),
        segment_overrides: plan.override_count(),
        identity_overrides: plan.identities,
        deleted_features: written.deleted_features,
        deleted_segments: written.deleted_segments,
        changed_environments,
        warnings: std::mem::take(&mut plan.warnings),
    };
    check_document_fits(ch, environment).await?;
    ch.touch_project(project);
    ch.touch_environment(environment);
    ch.audit(AuditEntry {
        project_id: Some(project),
        environment_id: Some(environment),
        action: "imported",
        resource_type: "environment",
        resource_id: environment.to_string(),
        log: AUDIT_LOG.to_string(),
        before,
        after: serde_json::to_value(&report).ok(),
    });
    Ok(report)
}

/// Second read of the identity overrides: each checked again against the plan and written,
/// one batch at a time, replacing the environment's.
async fn write_identities(
    ch: &mut Change,
    plan: &Plan,
    limits: &Limits,
    overrides: Overrides<'_>,
    features: &[i64],
    environment: i64,
) -> Result<()> {
    super::env_rows::clear(ch.tx(), "identity_overrides", environment).await?;
    let now = now_ms();
    let mut reader = Reader::open(overrides);
    let (mut i, mut written) = (0, 0);
    while let Some(batch) = reader.next().await? {
        let mut checked: Vec<PlanIdentity> = Vec::with_capacity(batch.len());
        for io in batch.iter() {
            let p = plan.identity(i, io, limits)?;
            written += p.overrides.len() as i64;
            checked.push(p);
            i += 1;
        }
        identities::write_batch(ch.tx(), &checked, features, environment, now).await?;
    }
    if i != plan.identities || written != plan.identity_overrides {
        return Err(stream::changed());
    }
    Ok(())
}

/// What each environment of the project serves now.
async fn served_by_project(
    ch: &mut Change,
    project: i64,
) -> Result<Vec<(i64, served::Fingerprint)>> {
    let envs: Vec<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT id FROM environments WHERE project_id = $1 ORDER BY id")
            .bind(project)
            .fetch_all(c)
            .await?
    });
    let mut out = Vec::with_capacity(envs.len());
    for env in envs {
        out.push((env, served::fingerprint(ch.tx(), env).await?));
    }
    Ok(out)
}

/// Counts of what the environment held before it was replaced, for the audit entry.
async fn summary(ch: &mut Change, env: i64) -> Result<serde_json::Value> {
    let (overrides, identity_overrides): (i64, i64) = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM segment_overrides WHERE environment_id = $1), \
                    (SELECT COUNT(*) FROM identity_overrides WHERE environment_id = $1)",
        )
        .bind(env)
        .fetch_one(c)
        .await?
    });
    Ok(json!({"environment": env, "segment_overrides": overrides,
              "identity_overrides": identity_overrides}))
}

/// Builds the environment's document inside the change: an import that would make it larger
/// than the project's `max_document_bytes` is refused like any other limit.
async fn check_document_fits(ch: &mut Change, environment: i64) -> Result<()> {
    match document::build_in(ch.tx(), environment, &BuildOptions::default()).await {
        Ok(_) => Ok(()),
        Err(BuildError::TooLarge { attempted, budget }) => Err(StoreError::LimitExceeded {
            limit: LimitName::MaxDocumentBytes,
            max: budget as i64,
            detail: format!("the environment document would exceed {attempted} bytes"),
        }),
        Err(BuildError::EnvironmentNotFound) => Err(StoreError::not_found("environment")),
        Err(BuildError::Store(e)) => Err(e),
    }
}
