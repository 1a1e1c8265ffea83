//! Where a document goes. An import replaces an existing project's features and segments, so it
//! merges into a project only when that project is provably the document's own — or the user
//! said so — and otherwise creates one. The decision is a [`Target`] value, reported back.
//! Main entry point: [`resolve`].

use flagstone_engine::EnvironmentDocument;
use serde::Serialize;

use super::{IdSpace, ImportOptions};
use crate::{sql, Change, Result, StoreError};

/// Why the import wrote where it did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetChoice {
    /// An environment with the document's `api_key` exists: it is replaced, in its project.
    SameEnvironment,
    /// The user named the project (`--project`, `?project=`).
    NamedProject,
    /// A project first imported from the same source with the same project id.
    SameSourceProject,
    /// No project is provably the document's: a new one.
    NewProject,
}

/// The resolved target: existing rows, or `None` to create.
pub(super) struct Target {
    pub organisation: Option<i64>,
    pub project: Option<i64>,
    pub environment: Option<i64>,
    pub choice: TargetChoice,
    /// Whether the document's feature and segment ids can be compared with the project's.
    pub space: IdSpace,
}

async fn project_provenance(
    ch: &mut Change,
    project: i64,
) -> Result<(i64, Option<String>, Option<i64>)> {
    let row: Option<(i64, Option<String>, Option<i64>)> = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "SELECT organisation_id, import_source, import_source_id FROM projects WHERE id = $1",
        )
        .bind(project)
        .fetch_optional(c)
        .await?
    });
    row.ok_or_else(|| StoreError::not_found("project"))
}

fn check_organisation(named: Option<i64>, actual: i64, what: &str) -> Result<()> {
    match named {
        Some(o) if o != actual => Err(StoreError::conflict(
            "organisation",
            format!("{what} belongs to organisation {actual}, not {o}"),
        )),
        _ => Ok(()),
    }
}

/// Decides the target of `doc` (see [`TargetChoice`] for the order of the rules).
pub(super) async fn resolve(
    ch: &mut Change,
    doc: &EnvironmentDocument,
    opts: &ImportOptions,
    source: &str,
) -> Result<Target> {
    let env: Option<(i64, i64)> = sql!(ch.tx(), |c| {
        sqlx::query_as("SELECT id, project_id FROM environments WHERE api_key = $1")
            .bind(&doc.api_key)
            .fetch_optional(c)
            .await?
    });
    if let Some((env, project)) = env {
        if opts.project.is_some_and(|p| p != project) {
            return Err(StoreError::conflict(
                "api_key",
                format!(
                    "environment {env} of project {project} has this api_key; import into \
                     that project, or give the document another api_key"
                ),
            ));
        }
        let (organisation, ..) = project_provenance(ch, project).await?;
        check_organisation(
            opts.organisation,
            organisation,
            &format!("the environment with this api_key (project {project})"),
        )?;
        return Ok(Target {
            organisation: Some(organisation),
            project: Some(project),
            environment: Some(env),
            choice: TargetChoice::SameEnvironment,
            // The document is this environment's: from its source, or exported from here.
            space: IdSpace::SameSource,
        });
    }
    if let Some(project) = opts.project {
        let (organisation, from, from_id) = project_provenance(ch, project).await?;
        check_organisation(
            opts.organisation,
            organisation,
            &format!("project {project}"),
        )?;
        let same = from.as_deref() == Some(source) && from_id == Some(doc.project.id);
        return Ok(Target {
            organisation: Some(organisation),
            project: Some(project),
            environment: None,
            choice: TargetChoice::NamedProject,
            space: if same {
                IdSpace::SameSource
            } else {
                IdSpace::Foreign
            },
        });
    }
    let same_source: Option<(i64, i64)> = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "SELECT id, organisation_id FROM projects WHERE import_source = $1 \
             AND import_source_id = $2 AND ($3 IS NULL OR organisation_id = $3) \
             ORDER BY id LIMIT 1",
        )
        .bind(source)
        .bind(doc.project.id)
        .bind(opts.organisation)
        .fetch_optional(c)
        .await?
    });
    if let Some((project, organisation)) = same_source {
        return Ok(Target {
            organisation: Some(organisation),
            project: Some(project),
            environment: None,
            choice: TargetChoice::SameSourceProject,
            space: IdSpace::SameSource,
        });
    }
    let organisation = match opts.organisation {
        Some(o) => {
            let found: Option<i64> = sql!(ch.tx(), |c| {
                sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1")
                    .bind(o)
                    .fetch_optional(c)
                    .await?
            });
            Some(found.ok_or_else(|| StoreError::not_found("organisation"))?)
        }
        None => match &doc.project.organisation {
            Some(org) => sql!(ch.tx(), |c| {
                sqlx::query_scalar(
                    "SELECT id FROM organisations WHERE import_source = $1 \
                     AND import_source_id = $2 ORDER BY id LIMIT 1",
                )
                .bind(source)
                .bind(org.id)
                .fetch_optional(c)
                .await?
            }),
            None => None,
        },
    };
    Ok(Target {
        organisation,
        project: None,
        environment: None,
        choice: TargetChoice::NewProject,
        space: IdSpace::Foreign,
    })
}
