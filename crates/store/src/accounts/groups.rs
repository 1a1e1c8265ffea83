//! Groups of an organisation's members (Flagsmith's "user permission groups"): permissions
//! granted to a group apply to each of its members (see [`super::grants`]). Only members of
//! the organisation can be in its groups; removing a member from the organisation removes
//! them from its groups too ([`super::members::remove`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::members::Person;
use crate::error::unique_as_conflict;
use crate::organisations::validate_name;
use crate::{
    list_window, sql, AuditEntry, Change, ListOf, Page, PageRequest, Result, StoreError, Tx,
};

/// Longest group name accepted.
pub const MAX_GROUP_NAME_CHARS: usize = 200;
/// Most users one `add-users`/`remove-users` request may name.
pub const MAX_USER_IDS: usize = 1_000;

/// A group with its members.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// People who join the organisation join this group too.
    pub is_default: bool,
    /// Always null: groups are not synchronised from an identity provider (Flagsmith's field).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub external_id: Option<String>,
    pub users: Vec<Person>,
}

/// A group as grants show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupSummary {
    pub id: i64,
    pub name: String,
}

/// `POST …/groups/`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub is_default: bool,
    /// Accepted for Flagsmith clients: user ids to add at once.
    #[serde(default)]
    pub users: Vec<i64>,
    /// Accepted for Flagsmith clients; must be null.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub external_id: Option<String>,
}

/// `PUT`/`PATCH …/groups/{id}/`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    /// Accepted for Flagsmith clients (a `PUT` sends the members back); ignored: membership
    /// changes through `add-users` and `remove-users`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<i64>>))]
    pub users: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub external_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: i64,
    name: String,
    is_default: bool,
}

fn validate_group_name(name: &str) -> Result<String> {
    let n = validate_name("name", name)?;
    if n.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err(StoreError::invalid(
            "name",
            format!("must be at most {MAX_GROUP_NAME_CHARS} characters"),
        ));
    }
    Ok(n)
}

fn no_external_id(id: &Option<String>) -> Result<()> {
    match id {
        Some(_) => Err(StoreError::invalid(
            "external_id",
            "groups are not synchronised from an identity provider here; leave it out",
        )),
        None => Ok(()),
    }
}

async fn with_users(tx: &mut Tx, rows: Vec<GroupRow>) -> Result<Vec<Group>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut users: BTreeMap<i64, Vec<Person>> = BTreeMap::new();
    if !ids.is_empty() {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        #[derive(sqlx::FromRow)]
        struct Row {
            group_id: i64,
            #[sqlx(flatten)]
            person: Person,
        }
        // The ids are integers of our own rows, so listing them inline is safe.
        let found: Vec<Row> = sql!(tx, |c| {
            sqlx::query_as(&format!(
                "SELECT gm.group_id, u.id, u.email, u.first_name, u.last_name, u.last_login_at \
                 FROM user_group_members gm JOIN users u ON u.id = gm.user_id \
                 WHERE gm.group_id IN ({list}) ORDER BY gm.group_id, u.id"
            ))
            .fetch_all(c)
            .await?
        });
        for r in found {
            users.entry(r.group_id).or_default().push(r.person);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| Group {
            users: users.remove(&r.id).unwrap_or_default(),
            id: r.id,
            name: r.name,
            is_default: r.is_default,
            external_id: None,
        })
        .collect())
}

/// The organisation's groups, by id, with their members.
pub async fn list(tx: &mut Tx, organisation_id: i64, page: PageRequest) -> Result<Page<Group>> {
    let of = ListOf::new(
        "user_groups",
        "id, name, is_default",
        "organisation_id",
        "id",
    );
    let rows: Page<GroupRow> = list_window(tx, of, organisation_id, page).await?;
    Ok(Page {
        count: rows.count,
        results: with_users(tx, rows.results).await?,
    })
}

/// One group of the organisation.
pub async fn get(tx: &mut Tx, organisation_id: i64, group_id: i64) -> Result<Group> {
    let row: Option<GroupRow> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, name, is_default FROM user_groups WHERE id = $1 AND organisation_id = $2",
        )
        .bind(group_id)
        .bind(organisation_id)
        .fetch_optional(c)
        .await?
    });
    let row = row.ok_or(StoreError::not_found("group"))?;
    Ok(with_users(tx, vec![row]).await?.remove(0))
}

fn audit(action: &'static str, group: &Group, log: String) -> AuditEntry {
    AuditEntry {
        project_id: None,
        environment_id: None,
        action,
        resource_type: "group",
        resource_id: group.id.to_string(),
        log,
        before: None,
        after: Some(serde_json::json!({
            "name": group.name,
            "is_default": group.is_default,
            "users": group.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        })),
    }
}

pub async fn create(
    ch: &mut Change,
    organisation_id: i64,
    new: &NewGroup,
    now: i64,
) -> Result<Group> {
    let name = validate_group_name(&new.name)?;
    no_external_id(&new.external_id)?;
    let id: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "INSERT INTO user_groups (organisation_id, name, is_default, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(organisation_id)
        .bind(&name)
        .bind(new.is_default)
        .bind(now)
        .fetch_one(c)
        .await
        .map_err(unique_as_conflict(
            "name",
            "a group with this name already exists in the organisation",
        ))?
    });
    if !new.users.is_empty() {
        insert_members(ch.tx(), organisation_id, id, &new.users).await?;
    }
    let group = get(ch.tx(), organisation_id, id).await?;
    let log = format!("Group '{}' created", group.name);
    ch.audit_in_organisation(organisation_id, audit("created", &group, log));
    Ok(group)
}

pub async fn update(
    ch: &mut Change,
    organisation_id: i64,
    group_id: i64,
    patch: &GroupPatch,
) -> Result<Group> {
    no_external_id(&patch.external_id)?;
    let before = get(ch.tx(), organisation_id, group_id).await?;
    let name = match &patch.name {
        Some(n) => validate_group_name(n)?,
        None => before.name.clone(),
    };
    sql!(ch.tx(), |c| {
        sqlx::query("UPDATE user_groups SET name = $2, is_default = $3 WHERE id = $1")
            .bind(group_id)
            .bind(&name)
            .bind(patch.is_default.unwrap_or(before.is_default))
            .execute(c)
            .await
            .map_err(unique_as_conflict(
                "name",
                "a group with this name already exists in the organisation",
            ))?
            .rows_affected()
    });
    let after = get(ch.tx(), organisation_id, group_id).await?;
    let log = format!("Group '{}' updated", after.name);
    ch.audit_in_organisation(organisation_id, audit("updated", &after, log));
    Ok(after)
}

/// Deletes a group; its grants go with it.
pub async fn delete(ch: &mut Change, organisation_id: i64, group_id: i64) -> Result<()> {
    let before = get(ch.tx(), organisation_id, group_id).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(group_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    let mut entry = audit(
        "deleted",
        &before,
        format!("Group '{}' deleted", before.name),
    );
    entry.before = entry.after.take();
    ch.audit_in_organisation(organisation_id, entry);
    Ok(())
}

fn check_ids(user_ids: &[i64]) -> Result<()> {
    if user_ids.is_empty() {
        return Err(StoreError::invalid(
            "user_ids",
            "must name at least one user",
        ));
    }
    if user_ids.len() > MAX_USER_IDS {
        return Err(StoreError::invalid(
            "user_ids",
            format!("at most {MAX_USER_IDS} users per request"),
        ));
    }
    Ok(())
}

async fn insert_members(
    tx: &mut Tx,
    organisation_id: i64,
    group_id: i64,
    user_ids: &[i64],
) -> Result<()> {
    check_ids(user_ids)?;
    for &user in user_ids {
        let member: Option<i64> = sql!(tx, |c| {
            sqlx::query_scalar(
                "SELECT user_id FROM organisation_members WHERE organisation_id = $1 AND user_id = $2",
            )
            .bind(organisation_id)
            .bind(user)
            .fetch_optional(c)
            .await?
        });
        if member.is_none() {
            return Err(StoreError::invalid(
                "user_ids",
                format!("user {user} is not a member of this organisation"),
            ));
        }
        sql!(tx, |c| {
            sqlx::query(
                "INSERT INTO user_group_members (group_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT (group_id, user_id) DO NOTHING",
            )
            .bind(group_id)
            .bind(user)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(())
}

/// Adds members of the organisation to a group (already in it: no change). A user who is not
/// a member of the organisation is refused, and nothing is added.
pub async fn add_users(
    ch: &mut Change,
    organisation_id: i64,
    group_id: i64,
    user_ids: &[i64],
) -> Result<Group> {
    get(ch.tx(), organisation_id, group_id).await?;
    insert_members(ch.tx(), organisation_id, group_id, user_ids).await?;
    let after = get(ch.tx(), organisation_id, group_id).await?;
    let log = format!("Users {user_ids:?} added to group '{}'", after.name);
    ch.audit_in_organisation(organisation_id, audit("updated", &after, log));
    Ok(after)
}

/// Removes users from a group (not in it: no change). Their permissions through the group end
/// with their next request.
pub async fn remove_users(
    ch: &mut Change,
    organisation_id: i64,
    group_id: i64,
    user_ids: &[i64],
) -> Result<Group> {
    check_ids(user_ids)?;
    get(ch.tx(), organisation_id, group_id).await?;
    for &user in user_ids {
        sql!(ch.tx(), |c| {
            sqlx::query("DELETE FROM user_group_members WHERE group_id = $1 AND user_id = $2")
                .bind(group_id)
                .bind(user)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    let after = get(ch.tx(), organisation_id, group_id).await?;
    let log = format!("Users {user_ids:?} removed from group '{}'", after.name);
    ch.audit_in_organisation(organisation_id, audit("updated", &after, log));
    Ok(after)
}

/// Puts a user who just joined the organisation into its default groups.
pub async fn join_default_groups(tx: &mut Tx, organisation_id: i64, user_id: i64) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO user_group_members (group_id, user_id) \
             SELECT id, $2 FROM user_groups WHERE organisation_id = $1 AND is_default \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(organisation_id)
        .bind(user_id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Puts a user into the given groups of the organisation (an emailed invite's groups); groups
/// deleted since are skipped.
pub async fn join_groups(
    tx: &mut Tx,
    organisation_id: i64,
    user_id: i64,
    group_ids: &[i64],
) -> Result<()> {
    for &g in group_ids {
        sql!(tx, |c| {
            sqlx::query(
                "INSERT INTO user_group_members (group_id, user_id) \
                 SELECT id, $3 FROM user_groups WHERE id = $1 AND organisation_id = $2 \
                 ON CONFLICT (group_id, user_id) DO NOTHING",
            )
            .bind(g)
            .bind(organisation_id)
            .bind(user_id)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(())
}
