//! Tags of a project, as Flagsmith has them (`/api/v1/projects/{id}/tags/`): a label, a colour
//! and a description, which features point at by id (`feature_tags`). Tags only organise
//! features for people (lists filtered by tag); they are not part of any environment document,
//! so changing a tag publishes nothing. Deleting a tag takes it off every feature.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::organisations::double_option;
use crate::{
    list_window, projects, sql, AuditEntry, Change, ListOf, Page, PageRequest, Result, StoreError,
    Tx,
};

/// Characters in a tag's label and description (Flagsmith's column sizes).
pub const MAX_LABEL_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 512;
/// Tags in one project.
pub const MAX_TAGS_PER_PROJECT: i64 = 1_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tag {
    pub id: i64,
    /// Stable across renames (`…/tags/get-by-uuid/{uuid}/`).
    pub uuid: String,
    pub label: String,
    /// A CSS hex colour, `#rgb`, `#rgba`, `#rrggbb` or `#rrggbbaa`.
    pub color: String,
    pub description: Option<String>,
    pub project: i64,
    /// Features carrying a permanent tag are never reported stale (Flagsmith's meaning).
    pub is_permanent: bool,
    /// Always false: Flagstone creates no tags of its own (Flagsmith's read-only field).
    pub is_system_tag: bool,
    /// Always null: Flagsmith's type of system tags, which Flagstone has none of.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tag_type: Option<()>,
}

#[derive(sqlx::FromRow)]
struct TagRow {
    id: i64,
    uuid: String,
    project_id: i64,
    label: String,
    color: String,
    description: Option<String>,
    is_permanent: bool,
}

impl From<TagRow> for Tag {
    fn from(r: TagRow) -> Tag {
        Tag {
            id: r.id,
            uuid: r.uuid,
            label: r.label,
            color: r.color,
            description: r.description,
            project: r.project_id,
            is_permanent: r.is_permanent,
            is_system_tag: false,
            tag_type: None,
        }
    }
}

const COLUMNS: &str = "id, uuid, project_id, label, color, description, is_permanent";

/// A tag as Flagsmith's clients send it on create and `PUT`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTag {
    pub label: String,
    pub color: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_permanent: bool,
    /// Read-only fields of `TagSerializer`, sent back by Flagsmith's dashboard (it `PUT`s
    /// the tag it read): ignored, as Flagsmith ignores them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub project: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub is_system_tag: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "type")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub tag_type: Option<serde::de::IgnoredAny>,
}

/// A partial update (`PATCH`): absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TagPatch {
    pub label: Option<String>,
    pub color: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    pub is_permanent: Option<bool>,
}

impl From<&NewTag> for TagPatch {
    /// A `PUT` replaces every writable field.
    fn from(t: &NewTag) -> TagPatch {
        TagPatch {
            label: Some(t.label.clone()),
            color: Some(t.color.clone()),
            description: Some(t.description.clone()),
            is_permanent: Some(t.is_permanent),
        }
    }
}

fn validate_label(label: &str) -> Result<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Err(StoreError::invalid(
            "label",
            format!("must be 1 to {MAX_LABEL_CHARS} characters"),
        ));
    }
    crate::text::refuse_deceptive("label", label)?;
    Ok(label.to_string())
}

/// Colours end up in style attributes of dashboards: only plain hex colours are taken.
fn validate_color(color: &str) -> Result<String> {
    let hex = color.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 4 | 6 | 8) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(color.to_string())
    } else {
        Err(StoreError::invalid(
            "color",
            "must be a hex colour such as #3d4db6",
        ))
    }
}

fn validate_description(d: Option<&str>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(StoreError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        Some(d) => {
            crate::text::refuse_deceptive("description", d)?;
            Ok(Some(d.to_string()))
        }
        None => Ok(None),
    }
}

fn audit(
    project_id: i64,
    action: &'static str,
    before: Option<&Tag>,
    after: Option<&Tag>,
) -> AuditEntry {
    let tag = after.or(before).expect("a tag before or after");
    AuditEntry {
        project_id: Some(project_id),
        environment_id: None,
        action,
        resource_type: "tag",
        resource_id: tag.id.to_string(),
        log: format!("Tag '{}' {action}", tag.label),
        before: before.and_then(|t| serde_json::to_value(t).ok()),
        after: after.and_then(|t| serde_json::to_value(t).ok()),
    }
}

/// Creates a tag in a project.
pub async fn create(ch: &mut Change, project_id: i64, new: &NewTag) -> Result<Tag> {
    let label = validate_label(&new.label)?;
    let color = validate_color(&new.color)?;
    let description = validate_description(new.description.as_deref())?;
    projects::get(ch.tx(), project_id).await?;
    // Row-locks the project so concurrent creates count its tags one after another.
    sql!(ch.tx(), |c| {
        sqlx::query("UPDATE projects SET name = name WHERE id = $1")
            .bind(project_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    let count: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM tags WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(c)
            .await?
    });
    if count >= MAX_TAGS_PER_PROJECT {
        return Err(StoreError::invalid(
            "label",
            format!("a project has at most {MAX_TAGS_PER_PROJECT} tags"),
        ));
    }
    let now = ch.now_ms();
    let row: TagRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO tags (uuid, project_id, label, color, description, is_permanent, \
                 created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(project_id)
        .bind(&label)
        .bind(&color)
        .bind(&description)
        .bind(new.is_permanent)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    let tag = Tag::from(row);
    ch.audit(audit(project_id, "created", None, Some(&tag)));
    Ok(tag)
}

/// A tag of a project; `NotFound` if it belongs to another project.
pub async fn get(tx: &mut Tx, project_id: i64, id: i64) -> Result<Tag> {
    let row: Option<TagRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM tags WHERE id = $1 AND project_id = $2"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(c)
        .await?
    });
    row.map(Tag::from).ok_or(StoreError::not_found("tag"))
}

/// A tag of a project by its uuid; `NotFound` for an unknown uuid or another project's tag.
pub async fn get_by_uuid(tx: &mut Tx, project_id: i64, uuid: &str) -> Result<Tag> {
    let row: Option<TagRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM tags WHERE uuid = $1 AND project_id = $2"
        ))
        .bind(uuid)
        .bind(project_id)
        .fetch_optional(c)
        .await?
    });
    row.map(Tag::from).ok_or(StoreError::not_found("tag"))
}

/// The tags of a project by id.
pub async fn list(tx: &mut Tx, project_id: i64, page: PageRequest) -> Result<Page<Tag>> {
    projects::get(tx, project_id).await?;
    let of = ListOf::new("tags", COLUMNS, "project_id", "id");
    list_window::<TagRow>(tx, of, project_id, page)
        .await?
        .try_map(|row| Ok(Tag::from(row)))
}

/// Updates a tag; absent fields of `patch` keep their value.
pub async fn update(ch: &mut Change, project_id: i64, id: i64, patch: &TagPatch) -> Result<Tag> {
    let before = get(ch.tx(), project_id, id).await?;
    let label = match &patch.label {
        Some(l) => validate_label(l)?,
        None => before.label.clone(),
    };
    let color = match &patch.color {
        Some(c) => validate_color(c)?,
        None => before.color.clone(),
    };
    let description = match &patch.description {
        Some(d) => validate_description(d.as_deref())?,
        None => before.description.clone(),
    };
    let row: TagRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE tags SET label = $2, color = $3, description = $4, is_permanent = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(&label)
        .bind(&color)
        .bind(&description)
        .bind(patch.is_permanent.unwrap_or(before.is_permanent))
        .fetch_one(c)
        .await?
    });
    let after = Tag::from(row);
    ch.audit(audit(project_id, "updated", Some(&before), Some(&after)));
    Ok(after)
}

/// Deletes a tag, taking it off every feature that carried it.
pub async fn delete(ch: &mut Change, project_id: i64, id: i64) -> Result<Tag> {
    let before = get(ch.tx(), project_id, id).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM feature_tags WHERE tag_id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM tags WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.audit(audit(project_id, "deleted", Some(&before), None));
    Ok(before)
}

/// Checks that `ids` are tags of the project (each at most once); returns them sorted.
pub(crate) async fn check_ids(tx: &mut Tx, project_id: i64, ids: &[i64]) -> Result<Vec<i64>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(StoreError::invalid(
            "tags",
            format!("tag {} is listed twice", w[0]),
        ));
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    let known: Vec<i64> = sql!(tx, |c| {
        sqlx::query_scalar(&format!(
            "SELECT id FROM tags WHERE project_id = $1 AND id IN ({}) ORDER BY id",
            id_list(&ids)
        ))
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    match ids.iter().find(|id| !known.contains(id)) {
        Some(id) => Err(StoreError::invalid(
            "tags",
            format!("{id} is not a tag of this project"),
        )),
        None => Ok(ids),
    }
}

/// Makes `ids` (checked by [`check_ids`]) the feature's tags.
pub(crate) async fn set_on_feature(tx: &mut Tx, feature_id: i64, ids: &[i64]) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("DELETE FROM feature_tags WHERE feature_id = $1")
            .bind(feature_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    for id in ids {
        sql!(tx, |c| {
            sqlx::query("INSERT INTO feature_tags (feature_id, tag_id) VALUES ($1, $2)")
                .bind(feature_id)
                .bind(id)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    Ok(())
}

/// The tag ids of each feature of a project with an id in `first..=last`, sorted.
pub(crate) async fn of_features(
    tx: &mut Tx,
    project_id: i64,
    first: i64,
    last: i64,
) -> Result<HashMap<i64, Vec<i64>>> {
    let rows: Vec<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT ft.feature_id, ft.tag_id FROM feature_tags ft \
             JOIN features f ON f.id = ft.feature_id \
             WHERE f.project_id = $1 AND ft.feature_id BETWEEN $2 AND $3 \
             ORDER BY ft.feature_id, ft.tag_id",
        )
        .bind(project_id)
        .bind(first)
        .bind(last)
        .fetch_all(c)
        .await?
    });
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for (feature, tag) in rows {
        out.entry(feature).or_default().push(tag);
    }
    Ok(out)
}

/// Integers read from the request and checked as such, written inline.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}
