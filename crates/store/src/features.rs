//! Features of a project, their multivariate options ([`options`]) and their environment default
//! states ([`states`]). A feature is part of every environment document of its project, so every
//! change to a feature or its options touches the whole project; creating a feature writes its
//! default state in every environment, within the `max_features` limit.

pub mod allocations;
pub mod environment_states;
mod model;
mod option_body;
pub mod options;
pub mod owners;
pub mod states;

pub use model::{Feature, FeaturePatch, FeatureType, NewFeature, MAX_DESCRIPTION_CHARS, MAX_TAGS};

pub use options::{MvOption, MvOptionPatch, NewMvOption};
pub use states::{FeatureState, FeatureStatePatch};

use crate::error::unique_as_conflict;
use crate::organisations::validate_name;
use crate::values::{encode_value, validate_flag_value};
use crate::{
    clock::now_ms, environments, projects, sql, AuditEntry, Change, LimitName, Limits, Page,
    PageRequest, Result, StoreError, Tx,
};
pub(crate) use model::present;
use model::{check_tag_count, validate_description, FeatureRow, COLUMNS};

/// Flagsmith treats feature names as case-insensitive within a project; SDKs look flags up by
/// exact name, so two names differing only in case would be a trap.
async fn check_name_free(tx: &mut Tx, project_id: i64, name: &str, except: i64) -> Result<()> {
    let taken: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT id FROM features WHERE project_id = $1 AND LOWER(name) = LOWER($2) \
             AND id <> $3",
        )
        .bind(project_id)
        .bind(name)
        .bind(except)
        .fetch_optional(c)
        .await?
    });
    match taken {
        Some(_) => Err(StoreError::conflict(
            "name",
            "a feature with this name exists in the project (names ignore case)",
        )),
        None => Ok(()),
    }
}

/// Row-locks the project (a no-op update) so concurrent creates count its features one after
/// another on PostgreSQL; SQLite already serialises writers.
async fn lock_project(tx: &mut Tx, project_id: i64) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("UPDATE projects SET name = name WHERE id = $1")
            .bind(project_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Row-locks a feature, so checks on its options and their allocations see a stable set.
pub(crate) async fn lock_feature(tx: &mut Tx, feature_id: i64) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("UPDATE features SET project_id = project_id WHERE id = $1")
            .bind(feature_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Creates a feature (with any inline options) and its default state in every environment.
pub async fn create(ch: &mut Change, project_id: i64, new: &NewFeature) -> Result<Feature> {
    let name = validate_name("name", &new.name)?;
    if new.project.is_some_and(|p| p != project_id) {
        return Err(StoreError::invalid(
            "project",
            "does not match the project in the path",
        ));
    }
    let limits = projects::limits(ch.tx(), project_id).await?;
    validate_flag_value("initial_value", &new.initial_value, &limits)?;
    let description = validate_description(new.description.as_deref())?;
    let tags = new.tags.as_deref().unwrap_or_default();
    check_tag_count(tags)?;
    options::validate_new_set(&new.multivariate_options, &limits)?;
    let kind = new
        .feature_type
        .unwrap_or(if new.multivariate_options.is_empty() {
            FeatureType::Standard
        } else {
            FeatureType::Multivariate
        });

    lock_project(ch.tx(), project_id).await?;
    let count: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM features WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(c)
            .await?
    });
    Limits::check(
        LimitName::MaxFeatures,
        limits.max_features,
        count + 1,
        || format!("the project already has {count} features"),
    )?;
    check_name_free(ch.tx(), project_id, &name, 0).await?;
    let tags = crate::tags::check_ids(ch.tx(), project_id, tags).await?;

    let now = now_ms();
    let initial = encode_value(&new.initial_value);
    let row: FeatureRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO features (project_id, name, type, initial_value, default_enabled, \
                 description, is_server_key_only, created_at, uuid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(project_id)
        .bind(&name)
        .bind(kind.as_str())
        .bind(&initial)
        .bind(new.default_enabled)
        .bind(&description)
        .bind(new.is_server_key_only)
        .bind(now)
        .bind(uuid::Uuid::new_v4().to_string())
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict(
            "name",
            "a feature with this name exists in the project",
        ))?
    });
    let envs: Vec<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT id FROM environments WHERE project_id = $1 ORDER BY id")
            .bind(project_id)
            .fetch_all(c)
            .await?
    });
    for env in envs {
        environments::insert_default_state(
            ch.tx(),
            row.id,
            env,
            new.default_enabled,
            initial.as_deref(),
            now,
        )
        .await?;
    }
    let mut opts = Vec::with_capacity(new.multivariate_options.len());
    for o in &new.multivariate_options {
        opts.push(options::insert(ch.tx(), row.id, o).await?);
    }
    crate::tags::set_on_feature(ch.tx(), row.id, &tags).await?;
    let feature = row.into_feature(tags, opts)?;
    ch.touch_project(project_id);
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "created",
        resource_type: "feature",
        resource_id: feature.id.to_string(),
        log: format!("Feature '{}' created", feature.name),
        before: None,
        after: serde_json::to_value(&feature).ok(),
    });
    Ok(feature)
}

/// A feature of a project; `NotFound` if it belongs to another project.
pub async fn get(tx: &mut Tx, project_id: i64, id: i64) -> Result<Feature> {
    let row: Option<FeatureRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM features WHERE id = $1 AND project_id = $2"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(c)
        .await?
    });
    let row = row.ok_or(StoreError::not_found("feature"))?;
    let opts = options::all_of(tx, id).await?;
    let tags = crate::tags::of_features(tx, project_id, id, id)
        .await?
        .remove(&id)
        .unwrap_or_default();
    let (mut people, mut groups) = owners::of_features(tx, project_id, id, id).await?;
    let mut feature = row.into_feature(tags, opts)?;
    feature.owners = people.remove(&id).unwrap_or_default();
    feature.group_owners = groups.remove(&id).unwrap_or_default();
    Ok(feature)
}

/// Which features of a project a list shows.
#[derive(Debug, Clone, Default)]
pub struct FeatureFilter {
    /// Only names containing this text (ignoring case).
    pub search: Option<String>,
    /// Only features carrying every one of these tags (ids), as Flagsmith's `?tags=` filters.
    pub tags: Vec<i64>,
    /// Only archived (`true`) or only live (`false`) features; both when absent.
    pub is_archived: Option<bool>,
    /// Only, or all but, these feature ids (e.g. the stale ones).
    pub ids: IdFilter,
}

/// A set of feature ids a list keeps or leaves out.
#[derive(Debug, Clone, Default)]
pub enum IdFilter {
    #[default]
    Any,
    Only(Vec<i64>),
    Except(Vec<i64>),
}

impl IdFilter {
    /// The SQL condition (ids are integers read from the store, written inline).
    fn condition(&self) -> Option<String> {
        let list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        match self {
            IdFilter::Any => None,
            IdFilter::Only(ids) if ids.is_empty() => Some("1 = 0".into()),
            IdFilter::Only(ids) => Some(format!("id IN ({})", list(ids))),
            IdFilter::Except(ids) if ids.is_empty() => None,
            IdFilter::Except(ids) => Some(format!("id NOT IN ({})", list(ids))),
        }
    }
}

/// Features of a project by id, filtered as `filter` says.
pub async fn list(
    tx: &mut Tx,
    project_id: i64,
    filter: &FeatureFilter,
    page: PageRequest,
) -> Result<Page<Feature>> {
    projects::get(tx, project_id).await?;
    let pattern = filter
        .search
        .as_deref()
        .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    let mut condition = crate::filter::Where::new()
        .bound("project_id = ?")
        .bound_if(pattern.is_some(), "LOWER(name) LIKE ? ESCAPE '\\'")
        .bound_if(filter.is_archived.is_some(), "is_archived = ?");
    // Tag ids are integers parsed from the query, written inline.
    for tag in &filter.tags {
        condition = condition.fixed(format!(
            "id IN (SELECT feature_id FROM feature_tags WHERE tag_id = {tag})"
        ));
    }
    if let Some(ids) = filter.ids.condition() {
        condition = condition.fixed(ids);
    }
    let (limit, offset) = (condition.placeholder(), condition.placeholder());
    let condition = condition.sql();
    let count_sql = format!("SELECT COUNT(*) FROM features WHERE {condition}");
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&count_sql).bind(project_id),
            pattern.as_ref(),
            filter.is_archived
        )
        .fetch_one(c)
        .await?
    });
    let rows_sql = format!(
        "SELECT {COLUMNS} FROM features WHERE {condition} ORDER BY id \
         LIMIT {limit} OFFSET {offset}"
    );
    let rows: Vec<FeatureRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&rows_sql).bind(project_id),
            pattern.as_ref(),
            filter.is_archived
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let (mut by_feature, mut tags, (mut people, mut groups)) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => (
            options::in_range(tx, project_id, first.id, last.id).await?,
            crate::tags::of_features(tx, project_id, first.id, last.id).await?,
            owners::of_features(tx, project_id, first.id, last.id).await?,
        ),
        _ => Default::default(),
    };
    let results = rows
        .into_iter()
        .map(|r| {
            let id = r.id;
            let opts = by_feature.remove(&id).unwrap_or_default();
            let tags = tags.remove(&id).unwrap_or_default();
            let mut feature = r.into_feature(tags, opts)?;
            feature.owners = people.remove(&id).unwrap_or_default();
            feature.group_owners = groups.remove(&id).unwrap_or_default();
            Ok(feature)
        })
        .collect::<Result<_>>()?;
    Ok(Page { count, results })
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Updates a feature. `initial_value` and `default_enabled` only seed environments created later.
pub async fn update(
    ch: &mut Change,
    project_id: i64,
    id: i64,
    patch: &FeaturePatch,
) -> Result<Feature> {
    let before = get(ch.tx(), project_id, id).await?;
    if patch.project.is_some_and(|p| p != project_id) {
        return Err(StoreError::invalid(
            "project",
            "does not match the project in the path",
        ));
    }
    let limits = projects::limits(ch.tx(), project_id).await?;
    let name = match &patch.name {
        Some(n) => validate_name("name", n)?,
        None => before.name.clone(),
    };
    let initial_value = patch
        .initial_value
        .clone()
        .unwrap_or_else(|| before.initial_value.clone());
    validate_flag_value("initial_value", &initial_value, &limits)?;
    let description = match &patch.description {
        Some(d) => validate_description(d.as_deref())?,
        None => before.description.clone(),
    };
    let tags = match &patch.tags {
        Some(ids) => {
            let ids = ids.as_deref().unwrap_or_default();
            check_tag_count(ids)?;
            Some(crate::tags::check_ids(ch.tx(), project_id, ids).await?)
        }
        None => None,
    };
    let kind = patch.feature_type.unwrap_or(before.feature_type);
    lock_feature(ch.tx(), id).await?;
    if kind == FeatureType::Standard && !options::all_of(ch.tx(), id).await?.is_empty() {
        return Err(StoreError::invalid(
            "type",
            "a feature with multivariate options must stay MULTIVARIATE; delete its options first",
        ));
    }
    if name != before.name {
        check_name_free(ch.tx(), project_id, &name, id).await?;
    }
    let row: FeatureRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE features SET name = $2, type = $3, initial_value = $4, default_enabled = $5, \
                 description = $6, is_server_key_only = $7, is_archived = $8 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&name)
        .bind(kind.as_str())
        .bind(encode_value(&initial_value))
        .bind(patch.default_enabled.unwrap_or(before.default_enabled))
        .bind(&description)
        .bind(
            patch
                .is_server_key_only
                .unwrap_or(before.is_server_key_only),
        )
        .bind(patch.is_archived.unwrap_or(before.is_archived))
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict(
            "name",
            "a feature with this name exists in the project",
        ))?
    });
    let tags = match tags {
        Some(ids) => {
            crate::tags::set_on_feature(ch.tx(), id, &ids).await?;
            ids
        }
        None => before.tags.clone(),
    };
    let mut after = row.into_feature(tags, before.multivariate_options.clone())?;
    after.owners = before.owners.clone();
    after.group_owners = before.group_owners.clone();
    ch.touch_project(project_id);
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "updated",
        resource_type: "feature",
        resource_id: id.to_string(),
        log: match (before.is_archived, after.is_archived) {
            (false, true) => format!("Feature '{}' archived", after.name),
            (true, false) => format!("Feature '{}' restored from the archive", after.name),
            _ => format!("Feature '{}' updated", after.name),
        },
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}

/// Deletes a feature with its options, states and overrides (cascade).
pub async fn delete(ch: &mut Change, project_id: i64, id: i64) -> Result<Feature> {
    let before = get(ch.tx(), project_id, id).await?;
    crate::webhooks::events::capture_feature_deletion(ch, id).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM features WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.touch_project(project_id);
    ch.audit(AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action: "deleted",
        resource_type: "feature",
        resource_id: id.to_string(),
        log: format!("Feature '{}' deleted", before.name),
        before: serde_json::to_value(&before).ok(),
        after: None,
    });
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
