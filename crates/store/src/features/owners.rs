//! Feature owners, as Flagsmith's `Feature.owners` and `Feature.group_owners`: the people and
//! groups of the project's organisation responsible for a feature. They change nothing any SDK
//! is served (no environment is touched); each change is audited. Whether a person may own a
//! feature of the project (Flagsmith: `VIEW_PROJECT` there) is the API's decision, made on the
//! person's grants before [`add_users`].

use std::collections::HashMap;

use serde::Serialize;

use super::Feature;
use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

/// Ids in one add or remove.
pub const MAX_IDS: usize = 100;

/// A person owning a feature, as Flagsmith's `UserListSerializer` shows one.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureOwner {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The last sign-in, ISO 8601; null if never.
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_login: Option<i64>,
}

/// A group owning a feature, as Flagsmith's `UserPermissionGroupSummarySerializer` shows one.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupOwner {
    pub id: i64,
    pub name: String,
}

/// Owners of the project's features with ids in `first..=last`, by feature id.
pub(crate) async fn of_features(
    tx: &mut Tx,
    project_id: i64,
    first: i64,
    last: i64,
) -> Result<(
    HashMap<i64, Vec<FeatureOwner>>,
    HashMap<i64, Vec<GroupOwner>>,
)> {
    let people: Vec<(i64, i64, String, String, String, Option<i64>)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT o.feature_id, u.id, u.email, u.first_name, u.last_name, u.last_login_at \
             FROM feature_owners o JOIN features f ON f.id = o.feature_id \
             JOIN users u ON u.id = o.user_id \
             WHERE f.project_id = $1 AND o.feature_id BETWEEN $2 AND $3 \
             ORDER BY o.feature_id, o.user_id",
        )
        .bind(project_id)
        .bind(first)
        .bind(last)
        .fetch_all(c)
        .await?
    });
    let groups: Vec<(i64, i64, String)> = sql!(tx, |c| {
        sqlx::query_as(
            // The name by a lookup per owner row: a join lets PostgreSQL's planner walk the
            // whole groups table when the tables are small (tests/plans.rs would see a scan).
            "SELECT o.feature_id, o.group_id, \
                 (SELECT g.name FROM user_groups g WHERE g.id = o.group_id) \
             FROM feature_group_owners o JOIN features f ON f.id = o.feature_id \
             WHERE f.project_id = $1 AND o.feature_id BETWEEN $2 AND $3 \
             ORDER BY o.feature_id, o.group_id",
        )
        .bind(project_id)
        .bind(first)
        .bind(last)
        .fetch_all(c)
        .await?
    });
    let mut by_person: HashMap<i64, Vec<FeatureOwner>> = HashMap::new();
    for (feature, id, email, first_name, last_name, last_login) in people {
        by_person.entry(feature).or_default().push(FeatureOwner {
            id,
            email,
            first_name,
            last_name,
            last_login,
        });
    }
    let mut by_group: HashMap<i64, Vec<GroupOwner>> = HashMap::new();
    for (feature, id, name) in groups {
        by_group
            .entry(feature)
            .or_default()
            .push(GroupOwner { id, name });
    }
    Ok((by_person, by_group))
}

/// The ids, without repeats; at most [`MAX_IDS`], naming `field` otherwise.
fn distinct(field: &str, ids: &[i64]) -> Result<Vec<i64>> {
    if ids.len() > MAX_IDS {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_IDS} ids at a time"),
        ));
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Integers checked as such, written inline.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// How many of `ids` exist, among users (`groups_of` None) or the organisation's groups.
async fn existing(tx: &mut Tx, ids: &[i64], groups_of: Option<i64>) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let n: i64 = match groups_of {
        None => {
            let query = format!("SELECT COUNT(*) FROM users WHERE id IN ({})", id_list(ids));
            sql!(tx, |c| sqlx::query_scalar(&query).fetch_one(c).await?)
        }
        Some(organisation) => {
            let query = format!(
                "SELECT COUNT(*) FROM user_groups WHERE organisation_id = $1 AND id IN ({})",
                id_list(ids)
            );
            sql!(tx, |c| {
                sqlx::query_scalar(&query)
                    .bind(organisation)
                    .fetch_one(c)
                    .await?
            })
        }
    };
    Ok(n as usize)
}

async fn organisation_of(tx: &mut Tx, project_id: i64) -> Result<i64> {
    let org: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT organisation_id FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(c)
            .await?
    });
    org.ok_or(StoreError::not_found("project"))
}

/// Who owns what: people (`user_ids`) or groups (`group_ids`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    People,
    Groups,
}

impl OwnerKind {
    fn field(self) -> &'static str {
        match self {
            OwnerKind::People => "user_ids",
            OwnerKind::Groups => "group_ids",
        }
    }

    fn table(self) -> (&'static str, &'static str) {
        match self {
            OwnerKind::People => ("feature_owners", "user_id"),
            OwnerKind::Groups => ("feature_group_owners", "group_id"),
        }
    }
}

/// Adds owners to a feature of the project (those already owning it stay). Every id must name
/// a user (`user_ids`), or a group of the project's organisation (`group_ids`): otherwise
/// nothing is written and the answer is Flagsmith's "Some users not found" / "Some groups not
/// found". Returns the feature as it is now.
pub async fn add(
    ch: &mut Change,
    project_id: i64,
    feature_id: i64,
    kind: OwnerKind,
    ids: &[i64],
) -> Result<Feature> {
    let before = super::get(ch.tx(), project_id, feature_id).await?;
    let ids = distinct(kind.field(), ids)?;
    let groups_of = match kind {
        OwnerKind::People => None,
        OwnerKind::Groups => Some(organisation_of(ch.tx(), project_id).await?),
    };
    if existing(ch.tx(), &ids, groups_of).await? != ids.len() {
        let what = match kind {
            OwnerKind::People => "Some users not found",
            OwnerKind::Groups => "Some groups not found",
        };
        return Err(StoreError::invalid(kind.field(), what));
    }
    let (table, column) = kind.table();
    for id in &ids {
        sql!(ch.tx(), |c| {
            sqlx::query(&format!(
                "INSERT INTO {table} (feature_id, {column}) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(feature_id)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    changed(ch, project_id, before, "added to").await
}

/// Removes owners from a feature of the project; ids that do not own it are ignored (as
/// Flagsmith's `remove` ignores them). Returns the feature as it is now.
pub async fn remove(
    ch: &mut Change,
    project_id: i64,
    feature_id: i64,
    kind: OwnerKind,
    ids: &[i64],
) -> Result<Feature> {
    let before = super::get(ch.tx(), project_id, feature_id).await?;
    let ids = distinct(kind.field(), ids)?;
    if !ids.is_empty() {
        let (table, column) = kind.table();
        sql!(ch.tx(), |c| {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE feature_id = $1 AND {column} IN ({})",
                id_list(&ids)
            ))
            .bind(feature_id)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    changed(ch, project_id, before, "removed from").await
}

async fn changed(ch: &mut Change, project_id: i64, before: Feature, how: &str) -> Result<Feature> {
    let after = super::get(ch.tx(), project_id, before.id).await?;
    if after.owners != before.owners || after.group_owners != before.group_owners {
        ch.audit(AuditEntry {
            project_id: Some(project_id),
            environment_id: None,
            action: "updated",
            resource_type: "feature",
            resource_id: after.id.to_string(),
            log: format!("Owners {how} feature '{}'", after.name),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
        });
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_bounded() {
        assert_eq!(distinct("user_ids", &[3, 1, 3]).unwrap(), vec![1, 3]);
        assert!(distinct("user_ids", &[0; MAX_IDS + 1]).is_err());
        assert_eq!(id_list(&[1, 22]), "1,22");
    }
}
