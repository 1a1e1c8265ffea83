//! What the SDK edge needs from identities: [`load_identity`] (an identity with its traits and
//! overrides, for evaluation), [`persist_sdk_traits`] (traits sent by an SDK, written without
//! audit or revision bump: they are data, not configuration) and [`environment_overrides_page`]
//! (identity overrides of an environment for the `/environment-document/` endpoint).

use serde_json::Value;

use super::overrides::{self, IdentityOverride};
use super::traits::{self, Trait};
use super::{find, validate_identifier, Identity, COLUMNS};
use crate::{clock::now_ms, sql, Result, StoreError, Tx};

/// Loads the identity `identifier` of an environment with its traits (ordered by key) and its
/// overrides (ordered by feature id); `None` if it does not exist.
pub async fn load_identity(
    tx: &mut Tx,
    environment_id: i64,
    identifier: &str,
) -> Result<Option<(Identity, Vec<Trait>, Vec<IdentityOverride>)>> {
    let Some(identity) = find(tx, environment_id, identifier).await? else {
        return Ok(None);
    };
    let traits = traits::all(tx, identity.id).await?;
    let overrides = overrides::all(tx, identity.id).await?;
    Ok(Some((identity, traits, overrides)))
}

/// Persists traits an SDK sent for `identifier`: creates the identity if it is missing, then
/// upserts each `(key, Some(value))` and deletes each `(key, None)`, in order (a key listed twice:
/// the last write wins). Everything is validated before anything is written, with the rules the
/// admin API and the edge use ([`traits::validate_batch`], [`traits::validate_identity_total`]);
/// on error nothing is written.
///
/// Runs in the caller's transaction, which the caller commits. Writes no audit entry and bumps
/// no revision: traits are not in the environment document.
pub async fn persist_sdk_traits(
    tx: &mut Tx,
    environment_id: i64,
    identifier: &str,
    traits: &[(String, Option<Value>)],
) -> Result<Identity> {
    validate_identifier(identifier)?;
    let limits = environment_limits(tx, environment_id).await?;
    traits::validate_batch(traits, &limits)?;
    if let Some(existing) = find(tx, environment_id, identifier).await? {
        let current = traits::all(tx, existing.id).await?;
        traits::validate_identity_total(
            current.iter().map(|t| t.trait_key.as_str()),
            traits,
            &limits,
        )?;
    } else {
        traits::validate_identity_total([], traits, &limits)?;
    }

    // Two edges may identify the same new identity at once: DO NOTHING lets the second one
    // find the first one's row instead of failing.
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO identities (environment_id, identifier, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (environment_id, identifier) DO NOTHING",
        )
        .bind(environment_id)
        .bind(identifier)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    let identity = find(tx, environment_id, identifier)
        .await?
        .ok_or(StoreError::not_found("identity"))?;
    traits::apply(tx, identity.id, traits).await?;
    Ok(identity)
}

/// The limits of the project an environment belongs to (what the edge checks SDK traits with).
pub async fn environment_limits(tx: &mut Tx, environment_id: i64) -> Result<crate::Limits> {
    let project_id: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT project_id FROM environments WHERE id = $1")
            .bind(environment_id)
            .fetch_optional(c)
            .await?
    });
    let project_id = project_id.ok_or(StoreError::not_found("environment"))?;
    crate::projects::limits(tx, project_id).await
}

/// A page of the environment's identity overrides grouped by identity, for local-evaluation
/// SDKs: up to `limit` identities with at least one override and an id greater than
/// `after_identity_id` (0 for the first page), ordered by identity id; each with its overrides
/// ordered by feature id. Pass the last identity's id to read the next page.
pub async fn environment_overrides_page(
    tx: &mut Tx,
    environment_id: i64,
    after_identity_id: i64,
    limit: i64,
) -> Result<Vec<(Identity, Vec<IdentityOverride>)>> {
    let identities: Vec<Identity> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identities WHERE id IN ( \
                 SELECT DISTINCT identity_id FROM identity_overrides \
                 WHERE environment_id = $1 AND identity_id > $2 \
                 ORDER BY identity_id LIMIT $3) \
             ORDER BY id"
        ))
        .bind(environment_id)
        .bind(after_identity_id)
        .bind(limit.max(1))
        .fetch_all(c)
        .await?
    });
    let mut page = Vec::with_capacity(identities.len());
    for identity in identities {
        let overrides = overrides::all(tx, identity.id).await?;
        page.push((identity, overrides));
    }
    Ok(page)
}
