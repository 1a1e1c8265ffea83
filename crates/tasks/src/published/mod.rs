//! `ENVIRONMENT_PUBLISHED`: one event per published revision, queued in the transaction that
//! records the publish ([`crate::steps::finish`]), so a publish that commits is always announced
//! and one that does not never is. The event carries the environment, the revision range
//! (previous published → new) and what changed for SDKs ([`diff`], a pure function of the two
//! documents and the identity-override counts).
//!
//! Opt-in: when no enabled webhook of the environment or its organisation lists the event, a
//! publish pays one indexed query ([`prepare`] returns `None`) and nothing else.

pub mod diff;

use flagstone_engine::EnvironmentDocument;
use flagstone_store::document::{self, BuiltDocument, StoredDocument};
use flagstone_store::webhooks::{announcements, events};
use flagstone_store::{Result, Tx};
use flagstone_webhooks::event as ev;
use flagstone_webhooks::EventType;
use serde_json::{json, Value};

pub use diff::{diff, DocumentDiff, IdentityCounts};

/// What a publish to be announced needs from before it replaces the stored document.
pub struct Prepared {
    target: events::Target,
    previous: Option<StoredDocument>,
}

/// Whether the publish of `doc` is announced; if so, reads the document it will replace.
/// Call before storing `doc`, in the same transaction.
pub async fn prepare(tx: &mut Tx, doc: &BuiltDocument) -> Result<Option<Prepared>> {
    let Some(organisation) = announcements::organisation_of(tx, doc.environment_id).await? else {
        return Ok(None);
    };
    let target = events::Target::Environment {
        environment: doc.environment_id,
        organisation,
    };
    if !announcements::subscribed(tx, target, EventType::EnvironmentPublished).await? {
        return Ok(None);
    }
    let previous = document::load(tx, doc.environment_id).await?;
    Ok(Some(Prepared { target, previous }))
}

/// [`prepare`] for a group of publishes: when no enabled webhook anywhere subscribes to
/// `ENVIRONMENT_PUBLISHED` (the usual case) one query answers for the whole group; otherwise
/// each publish is prepared as alone.
pub async fn prepare_many(tx: &mut Tx, docs: &[&BuiltDocument]) -> Result<Vec<Option<Prepared>>> {
    let anyone = !announcements::subscribed_organisations(tx, EventType::EnvironmentPublished)
        .await?
        .is_empty();
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        out.push(if anyone {
            prepare(tx, doc).await?
        } else {
            None
        });
    }
    Ok(out)
}

/// The event id of the publish of `revision`: a revision is published at most once (a newer
/// document replaces an older one, never the same revision twice).
pub fn event_id(environment_id: i64, revision: i64) -> String {
    format!("published.{environment_id}.{revision}")
}

/// Queues the `ENVIRONMENT_PUBLISHED` event of `doc`, just stored, in the same transaction.
/// Returns how many deliveries were queued. A document that cannot be read back (it should
/// always can) is logged and not announced rather than failing the publish.
pub async fn announce(
    tx: &mut Tx,
    prepared: Prepared,
    doc: &BuiltDocument,
    now: i64,
) -> Result<u64> {
    let Some(new) = parse(doc.json(), "new") else {
        return Ok(0);
    };
    let previous = prepared
        .previous
        .as_ref()
        .and_then(|p| parse(p.json(), "previous").map(|d| (p.revision, d)));
    let after = announcements::identity_override_counts(tx, doc.environment_id).await?;
    let before = announcements::last_announced(tx, doc.environment_id)
        .await?
        .filter(|(rev, _)| previous.as_ref().is_some_and(|(p, _)| p == rev))
        .map(|(_, c)| c);
    let changes = diff(
        previous.as_ref().map(|(_, d)| d),
        &new,
        before.as_ref(),
        &after,
    );
    let data = event_data(
        &new,
        previous.as_ref().map(|(r, _)| *r),
        doc.revision,
        now,
        &changes,
    );
    announcements::record_announced(tx, doc.environment_id, doc.revision, &after, now).await?;
    events::enqueue(
        tx,
        prepared.target,
        EventType::EnvironmentPublished,
        &event_id(doc.environment_id, doc.revision),
        &data,
        now,
    )
    .await
}

/// The event's data: environment, project, revision range, when, and the changes.
pub fn event_data(
    doc: &EnvironmentDocument,
    previous_revision: Option<i64>,
    revision: i64,
    now: i64,
    changes: &DocumentDiff,
) -> Value {
    json!({
        "environment": {"id": doc.id, "name": doc.name, "api_key": doc.api_key},
        "project": {"id": doc.project.id, "name": doc.project.name},
        "revision": {"previous": previous_revision, "new": revision},
        "published_at": ev::timestamp(now),
        "changes": changes,
    })
}

fn parse(json: std::io::Result<Vec<u8>>, which: &str) -> Option<EnvironmentDocument> {
    let parsed = json
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(error = %e, which, "cannot read a document to announce its publish");
            None
        }
    }
}
