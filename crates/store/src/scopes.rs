//! Where a request's object sits, for permission checks: an environment (by client key or id),
//! a project or an organisation, resolved to its chain of ids (environment → project →
//! organisation) in one indexed read. And [`visible_sql`], which turns what a caller may see
//! ([`Visibility`]) into a SQL condition, so filtered lists page and count correctly.

use flagstone_access::{EnvironmentRef, ProjectRef, Visibility};

use crate::{sql, Result, StoreError, Tx};

const ENVIRONMENT: &str = "SELECT e.id, e.project_id, p.organisation_id FROM environments e \
     JOIN projects p ON p.id = e.project_id";

fn env_ref((environment, project, organisation): (i64, i64, i64)) -> EnvironmentRef {
    EnvironmentRef {
        organisation,
        project,
        environment,
    }
}

/// The environment whose client-side key is `api_key`, with its project and organisation.
pub async fn environment_by_key(tx: &mut Tx, api_key: &str) -> Result<EnvironmentRef> {
    let row: Option<(i64, i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(&format!("{ENVIRONMENT} WHERE e.api_key = $1"))
            .bind(api_key)
            .fetch_optional(c)
            .await?
    });
    row.map(env_ref).ok_or(StoreError::not_found("environment"))
}

/// The environment `id`, with its project and organisation.
pub async fn environment(tx: &mut Tx, id: i64) -> Result<EnvironmentRef> {
    let row: Option<(i64, i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(&format!("{ENVIRONMENT} WHERE e.id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.map(env_ref).ok_or(StoreError::not_found("environment"))
}

/// The project `id`, with its organisation.
pub async fn project(tx: &mut Tx, id: i64) -> Result<ProjectRef> {
    let row: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT organisation_id FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.map(|organisation| ProjectRef {
        organisation,
        project: id,
    })
    .ok_or(StoreError::not_found("project"))
}

/// An object Flagsmith's clients address by `uuid` (its `get-by-uuid` routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByUuid {
    Project,
    Environment,
    Feature,
    Segment,
}

impl ByUuid {
    fn table(self) -> &'static str {
        match self {
            ByUuid::Project => "projects",
            ByUuid::Environment => "environments",
            ByUuid::Feature => "features",
            ByUuid::Segment => "segments",
        }
    }

    fn what(self) -> &'static str {
        match self {
            ByUuid::Project => "project",
            ByUuid::Environment => "environment",
            ByUuid::Feature => "feature",
            ByUuid::Segment => "segment",
        }
    }
}

/// The id of the `kind` object whose uuid is `uuid`, and the id of its project (a project's
/// own id for a project). Not found for an unknown or malformed uuid.
pub async fn by_uuid(tx: &mut Tx, kind: ByUuid, uuid: &str) -> Result<(i64, i64)> {
    let project = if kind == ByUuid::Project {
        "id"
    } else {
        "project_id"
    };
    let table = kind.table();
    let row: Option<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT id, {project} FROM {table} WHERE uuid = $1"
        ))
        .bind(uuid)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found(kind.what()))
}

/// The multivariate option whose uuid is `uuid`: `(option id, feature id, project id)`. Not
/// found for an unknown or malformed uuid.
pub async fn mv_option_by_uuid(tx: &mut Tx, uuid: &str) -> Result<(i64, i64, i64)> {
    let row: Option<(i64, i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT o.id, o.feature_id, f.project_id FROM mv_options o \
             JOIN features f ON f.id = o.feature_id WHERE o.uuid = $1",
        )
        .bind(uuid)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("multivariate option"))
}

/// What a feature-state uuid names: an environment default state or a segment override (the
/// state of Flagsmith's feature segment), with its id and environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateByUuid {
    Default { id: i64, environment: i64 },
    SegmentOverride { id: i64, environment: i64 },
}

/// The default state or segment override whose uuid is `uuid`; not found otherwise.
pub async fn feature_state_by_uuid(tx: &mut Tx, uuid: &str) -> Result<StateByUuid> {
    let default: Option<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as("SELECT id, environment_id FROM feature_states WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(c)
            .await?
    });
    if let Some((id, environment)) = default {
        return Ok(StateByUuid::Default { id, environment });
    }
    let segment: Option<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as("SELECT id, environment_id FROM segment_overrides WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(c)
            .await?
    });
    segment
        .map(|(id, environment)| StateByUuid::SegmentOverride { id, environment })
        .ok_or(StoreError::not_found("feature state"))
}

/// The organisation `id`, if it exists.
pub async fn organisation(tx: &mut Tx, id: i64) -> Result<i64> {
    let row: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    row.ok_or(StoreError::not_found("organisation"))
}

/// The environments of these segment overrides (each once; unknown ids are left out, for the
/// change itself to report).
pub async fn segment_override_environments(
    tx: &mut Tx,
    ids: &[i64],
) -> Result<Vec<EnvironmentRef>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "{ENVIRONMENT} WHERE e.id IN (SELECT DISTINCT environment_id FROM segment_overrides \
             WHERE id IN ({})) ORDER BY e.id",
            id_list(ids)
        ))
        .fetch_all(c)
        .await?
    });
    Ok(rows.into_iter().map(env_ref).collect())
}

/// The columns a list's rows are placed by, for [`visible_sql`]. `None`: the rows have no such
/// column (they are then matched by the others only).
#[derive(Clone, Copy, Debug)]
pub struct Placed<'a> {
    pub organisation: Option<&'a str>,
    pub project: Option<&'a str>,
    pub environment: Option<&'a str>,
}

/// A SQL condition true for the rows `v` lets the caller see. The ids are integers written into
/// the text (never user-supplied strings), so the condition is safe to splice.
pub fn visible_sql(v: &Visibility, at: Placed<'_>) -> String {
    if v.everything {
        return "1 = 1".into();
    }
    let mut any = Vec::new();
    for (column, ids) in [
        (at.organisation, &v.organisations),
        (at.project, &v.projects),
        (at.environment, &v.environments),
    ] {
        if let (Some(column), false) = (column, ids.is_empty()) {
            any.push(format!("{column} IN ({})", id_list(ids)));
        }
    }
    if any.is_empty() {
        "1 = 0".into()
    } else {
        format!("({})", any.join(" OR "))
    }
}

fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_becomes_a_condition() {
        let at = Placed {
            organisation: Some("p.organisation_id"),
            project: Some("e.project_id"),
            environment: Some("e.id"),
        };
        assert_eq!(visible_sql(&Visibility::everything(), at), "1 = 1");
        assert_eq!(visible_sql(&Visibility::default(), at), "1 = 0");
        let v = Visibility {
            organisations: vec![1],
            environments: vec![5, 6],
            ..Default::default()
        };
        assert_eq!(
            visible_sql(&v, at),
            "(p.organisation_id IN (1) OR e.id IN (5, 6))"
        );
        let no_env = Placed {
            environment: None,
            ..at
        };
        assert_eq!(visible_sql(&v, no_env), "(p.organisation_id IN (1))");
    }
}
