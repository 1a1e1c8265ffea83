//! The import itself: resolve the target (see the module docs of [`super`]), check the
//! document against its project's limits ([`super::plan`]), write everything in one
//! [`Change`] ([`super::write`]), and refuse the lot if the resulting environment document would
//! not fit `max_document_bytes`. Main entry point: [`import`].

use flagstone_engine::EnvironmentDocument;
use serde_json::json;

use super::ids::{insert_with_id, Ids};
use super::plan::plan;
use super::{write, ImportReport, AUDIT_LOG};
use crate::document::{self, BuildError, BuildOptions};
use crate::{
    clock::now_ms, projects, sql, Actor, AuditEntry, Change, LimitName, Limits, Result, Store,
    StoreError,
};

/// Where the document goes: existing rows found by [`resolve`], or `None` to create.
struct Target {
    organisation: Option<i64>,
    project: Option<i64>,
    environment: Option<i64>,
}

/// Imports `doc` as one change made by `actor`; see the module docs for what is replaced.
pub async fn import(
    store: &Store,
    actor: &Actor,
    doc: &EnvironmentDocument,
) -> Result<ImportReport> {
    let mut ch = store.change(actor).await?;
    let report = import_in(&mut ch, doc).await?;
    ch.commit().await?;
    Ok(report)
}

async fn resolve(ch: &mut Change, doc: &EnvironmentDocument) -> Result<Target> {
    let env: Option<(i64, i64)> = sql!(ch.tx(), |c| {
        sqlx::query_as("SELECT id, project_id FROM environments WHERE api_key = $1")
            .bind(&doc.api_key)
            .fetch_optional(c)
            .await?
    });
    let project_name = doc.project.name.trim();
    let project: Option<(i64, i64)> = match env {
        Some((_, p)) => sql!(ch.tx(), |c| {
            sqlx::query_as("SELECT id, organisation_id FROM projects WHERE id = $1")
                .bind(p)
                .fetch_optional(c)
                .await?
        }),
        None => sql!(ch.tx(), |c| {
            sqlx::query_as("SELECT id, organisation_id FROM projects WHERE id = $1 AND name = $2")
                .bind(doc.project.id)
                .bind(project_name)
                .fetch_optional(c)
                .await?
        }),
    };
    if let Some((p, o)) = project {
        return Ok(Target {
            organisation: Some(o),
            project: Some(p),
            environment: env.map(|e| e.0),
        });
    }
    let Some(org) = &doc.project.organisation else {
        return Ok(Target {
            organisation: None,
            project: None,
            environment: None,
        });
    };
    let organisation: Option<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1 AND name = $2")
            .bind(org.id)
            .bind(org.name.trim())
            .fetch_optional(c)
            .await?
    });
    let project: Option<i64> = match organisation {
        Some(o) => sql!(ch.tx(), |c| {
            sqlx::query_scalar(
                "SELECT id FROM projects WHERE organisation_id = $1 AND name = $2 \
                 ORDER BY id LIMIT 1",
            )
            .bind(o)
            .bind(project_name)
            .fetch_optional(c)
            .await?
        }),
        None => None,
    };
    Ok(Target {
        organisation,
        project,
        environment: None,
    })
}

/// Creates or updates the organisation, project and environment; returns their ids.
async fn write_header(
    ch: &mut Change,
    ids: &mut Ids,
    doc: &EnvironmentDocument,
    t: &Target,
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
    let organisation = match t.organisation {
        Some(id) => {
            sql!(&mut *tx, |c| {
                sqlx::query(
                    "UPDATE organisations SET name = $2, feature_analytics = $3, \
                         stop_serving_flags = $4, persist_trait_data = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(&org_name)
                .bind(analytics)
                .bind(stop)
                .bind(persist)
                .execute(c)
                .await?
                .rows_affected()
            });
            id
        }
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
                    "created_at"
                ],
                want,
                |q| q
                    .bind(&org_name)
                    .bind(stop)
                    .bind(persist)
                    .bind(analytics)
                    .bind(now)
            )
            .0
        }
    };
    let p = &doc.project;
    let project_name = p.name.trim().to_string();
    let project = match t.project {
        Some(id) => {
            sql!(&mut *tx, |c| {
                sqlx::query(
                    "UPDATE projects SET name = $2, hide_disabled_flags = $3, \
                         enable_realtime_updates = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(&project_name)
                .bind(p.hide_disabled_flags)
                .bind(p.enable_realtime_updates)
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
                    "created_at"
                ],
                want,
                |q| q
                    .bind(organisation)
                    .bind(&project_name)
                    .bind(p.hide_disabled_flags)
                    .bind(p.enable_realtime_updates)
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
pub(crate) async fn import_in(ch: &mut Change, doc: &EnvironmentDocument) -> Result<ImportReport> {
    let target = resolve(ch, doc).await?;
    let limits = match target.project {
        Some(p) => projects::limits(ch.tx(), p).await?,
        None => Limits::default(),
    };
    let mut plan = plan(doc, &limits)?;
    let before = match target.environment {
        Some(env) => Some(summary(ch, env).await?),
        None => None,
    };
    let mut ids = Ids::default();
    let (organisation, project, environment) = write_header(ch, &mut ids, doc, &target).await?;
    let written = write::rows(ch.tx(), &mut ids, &mut plan, project, environment).await?;
    ids.bump_sequences(ch.tx()).await?;

    let report = ImportReport {
        organisation,
        project,
        environment,
        api_key: doc.api_key.clone(),
        created: target.environment.is_none(),
        features: plan.features.len(),
        segments: plan.segments.len(),
        segment_overrides: plan.override_count(),
        identity_overrides: plan.identities.len(),
        deleted_features: written.deleted_features,
        deleted_segments: written.deleted_segments,
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
