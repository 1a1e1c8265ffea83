//! Traits of an identity: `trait_key` → a string, integer, float or boolean, stored as JSON
//! text (see [`crate::values`]) so int vs float and string vs number survive exactly.
//!
//! As in Flagsmith, setting a trait to `null` deletes it. Traits are not in the environment
//! document, so admin changes write an audit entry but bump no revision. The same validation
//! and write path serve the admin API ([`set`]) and the SDK edge ([`super::sdk`]).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Identity;
use crate::environments::Environment;
use crate::{
    clock::now_ms, list_window, sql, AuditEntry, Change, LimitName, Limits, ListOf, Page,
    PageRequest, Result, StoreError, Tx,
};

/// Characters of a trait key, at most.
pub const MAX_TRAIT_KEY_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trait {
    pub trait_key: String,
    /// A string, integer, float or boolean, as it was sent.
    pub trait_value: Value,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

/// One trait to set; `trait_value: null` deletes the trait.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TraitInput {
    pub trait_key: String,
    /// A string, integer, float or boolean; `null` deletes the trait.
    pub trait_value: Value,
}

#[derive(sqlx::FromRow)]
struct TraitRow {
    trait_key: String,
    value: String,
    updated_at: i64,
}

impl TryFrom<TraitRow> for Trait {
    type Error = StoreError;
    fn try_from(r: TraitRow) -> Result<Trait> {
        let trait_value = serde_json::from_str(&r.value).map_err(|e| StoreError::Corrupt {
            what: "traits.value",
            detail: e.to_string(),
        })?;
        Ok(Trait {
            trait_key: r.trait_key,
            trait_value,
            updated_at: r.updated_at,
        })
    }
}

/// Checks a trait key is 1..=200 characters that display as what they are ([`crate::text`]).
pub fn validate_trait_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::invalid("trait_key", "must not be empty"));
    }
    crate::text::refuse_deceptive("trait_key", key)?;
    if key.chars().count() > MAX_TRAIT_KEY_CHARS {
        return Err(StoreError::invalid(
            "trait_key",
            format!("must be at most {MAX_TRAIT_KEY_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Checks a trait value to store: a string (within `max_trait_value_chars` characters),
/// number or boolean. `null` is not a value but a deletion, handled by the caller.
pub fn validate_trait_value(key: &str, v: &Value, limits: &Limits) -> Result<()> {
    match v {
        Value::Bool(_) | Value::Number(_) => Ok(()),
        Value::String(s) => {
            let chars = s.chars().count() as i64;
            Limits::check(
                LimitName::MaxTraitValueChars,
                limits.max_trait_value_chars,
                chars,
                || format!("trait '{key}' value is {chars} characters"),
            )
        }
        _ => Err(StoreError::invalid(
            "trait_value",
            format!("trait '{key}': must be a string, number, boolean or null (to delete)"),
        )),
    }
}

/// The one rule for a batch of trait writes, whichever path it comes from (the admin API, the
/// SDK API at the edge, SDK traits persisted behind the request): at most
/// `max_traits_per_request` of them, each key and value valid. `(key, None)` deletes. Nothing is
/// written when any of them is refused.
pub fn validate_batch(traits: &[(String, Option<Value>)], limits: &Limits) -> Result<()> {
    let n = traits.len() as i64;
    Limits::check(
        LimitName::MaxTraitsPerRequest,
        limits.max_traits_per_request,
        n,
        || format!("the request sends {n} traits"),
    )?;
    for (key, value) in traits {
        validate_trait_key(key)?;
        if let Some(v) = value {
            validate_trait_value(key, v, limits)?;
        }
    }
    Ok(())
}

/// The one rule for how many traits an identity holds: after `writes` over the `current` keys,
/// at most `max_traits_per_identity`. Only growth is refused, so an identity already past a
/// lowered limit can still change or delete what it has.
pub fn validate_identity_total<'a>(
    current: impl IntoIterator<Item = &'a str>,
    writes: &'a [(String, Option<Value>)],
    limits: &Limits,
) -> Result<()> {
    let mut keys: HashSet<&str> = current.into_iter().collect();
    let before = keys.len();
    for (key, value) in writes {
        match value {
            Some(_) => keys.insert(key),
            None => keys.remove(key.as_str()),
        };
    }
    let after = keys.len() as i64;
    if keys.len() <= before {
        return Ok(());
    }
    Limits::check(
        LimitName::MaxTraitsPerIdentity,
        limits.max_traits_per_identity,
        after,
        || format!("the identity would hold {after} traits"),
    )
}

const COLUMNS: &str = "trait_key, value, updated_at";

/// Traits of an identity, ordered by key.
pub async fn list(tx: &mut Tx, identity_id: i64, page: PageRequest) -> Result<Page<Trait>> {
    let of = ListOf::new("traits", COLUMNS, "identity_id", "trait_key");
    list_window::<TraitRow>(tx, of, identity_id, page)
        .await?
        .try_map(Trait::try_from)
}

/// Every trait of an identity, ordered by key (for evaluation).
pub async fn all(tx: &mut Tx, identity_id: i64) -> Result<Vec<Trait>> {
    let rows: Vec<TraitRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM traits WHERE identity_id = $1 ORDER BY trait_key"
        ))
        .bind(identity_id)
        .fetch_all(c)
        .await?
    });
    rows.into_iter().map(Trait::try_from).collect()
}

/// One trait, if the identity has it.
pub async fn find(tx: &mut Tx, identity_id: i64, key: &str) -> Result<Option<Trait>> {
    let row: Option<TraitRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM traits WHERE identity_id = $1 AND trait_key = $2"
        ))
        .bind(identity_id)
        .bind(key)
        .fetch_optional(c)
        .await?
    });
    row.map(Trait::try_from).transpose()
}

pub async fn get(tx: &mut Tx, identity_id: i64, key: &str) -> Result<Trait> {
    find(tx, identity_id, key)
        .await?
        .ok_or(StoreError::not_found("trait"))
}

/// Writes already validated traits: upserts values, deletes keys set to `None`. A value equal
/// to the stored one is not rewritten, so `updated_at` says when the value last changed (and
/// the edge re-sending the same traits on every request costs no row writes).
pub(crate) async fn apply(
    tx: &mut Tx,
    identity_id: i64,
    traits: &[(String, Option<Value>)],
) -> Result<()> {
    let now = now_ms();
    for (key, value) in traits {
        match value {
            Some(v) => sql!(tx, |c| {
                sqlx::query(
                    "INSERT INTO traits (identity_id, trait_key, value, updated_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (identity_id, trait_key) DO UPDATE \
                     SET value = excluded.value, updated_at = excluded.updated_at \
                     WHERE traits.value <> excluded.value",
                )
                .bind(identity_id)
                .bind(key)
                .bind(v.to_string())
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            }),
            None => sql!(tx, |c| {
                sqlx::query("DELETE FROM traits WHERE identity_id = $1 AND trait_key = $2")
                    .bind(identity_id)
                    .bind(key)
                    .execute(c)
                    .await?
                    .rows_affected()
            }),
        };
    }
    Ok(())
}

/// Sets (or, with `null`, deletes) one or more traits of an identity in one change. Returns the
/// traits that hold a value afterwards, in input order. A key listed twice is refused.
pub async fn set(
    ch: &mut Change,
    env: &Environment,
    identity: &Identity,
    inputs: &[TraitInput],
) -> Result<Vec<Trait>> {
    if inputs.is_empty() {
        return Err(StoreError::invalid("traits", "must not be empty"));
    }
    let mut seen = HashSet::new();
    for i in inputs {
        if !seen.insert(i.trait_key.as_str()) {
            return Err(StoreError::invalid(
                "trait_key",
                format!("'{}' is listed twice", i.trait_key),
            ));
        }
    }
    let writes: Vec<(String, Option<Value>)> = inputs
        .iter()
        .map(|i| {
            let v = (!i.trait_value.is_null()).then(|| i.trait_value.clone());
            (i.trait_key.clone(), v)
        })
        .collect();
    let limits = crate::projects::limits(ch.tx(), env.project).await?;
    validate_batch(&writes, &limits)?;
    let current = all(ch.tx(), identity.id).await?;
    validate_identity_total(
        current.iter().map(|t| t.trait_key.as_str()),
        &writes,
        &limits,
    )?;

    let mut before = serde_json::Map::new();
    for (key, _) in &writes {
        let old = find(ch.tx(), identity.id, key).await?;
        before.insert(key.clone(), old.map_or(Value::Null, |t| t.trait_value));
    }
    apply(ch.tx(), identity.id, &writes).await?;
    let mut after = serde_json::Map::new();
    let mut result = Vec::new();
    for (key, _) in &writes {
        let new = find(ch.tx(), identity.id, key).await?;
        after.insert(
            key.clone(),
            new.as_ref().map_or(Value::Null, |t| t.trait_value.clone()),
        );
        result.extend(new);
    }
    let keys: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "updated",
        resource_type: "trait",
        resource_id: identity.id.to_string(),
        log: format!(
            "Traits of identity '{}' set: {}",
            identity.identifier,
            keys.join(", ")
        ),
        before: Some(Value::Object(before)),
        after: Some(Value::Object(after)),
    });
    Ok(result)
}

/// Changes the value of an existing trait (`null` deletes it); not found if the identity does
/// not have it. Returns the trait afterwards, `None` when deleted.
pub async fn update(
    ch: &mut Change,
    env: &Environment,
    identity: &Identity,
    key: &str,
    value: &Value,
) -> Result<Option<Trait>> {
    get(ch.tx(), identity.id, key).await?;
    let input = TraitInput {
        trait_key: key.to_string(),
        trait_value: value.clone(),
    };
    Ok(set(ch, env, identity, &[input]).await?.pop())
}

/// Deletes one trait; not found if the identity does not have it.
pub async fn delete(
    ch: &mut Change,
    env: &Environment,
    identity: &Identity,
    key: &str,
) -> Result<Trait> {
    let before = get(ch.tx(), identity.id, key).await?;
    apply(ch.tx(), identity.id, &[(key.to_string(), None)]).await?;
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "deleted",
        resource_type: "trait",
        resource_id: identity.id.to_string(),
        log: format!(
            "Trait '{key}' of identity '{}' deleted",
            identity.identifier
        ),
        before: Some(serde_json::json!({ key: before.trait_value })),
        after: None,
    });
    Ok(before)
}
