//! Publish notifications across processes (PostgreSQL): [`notify_published`] sends
//! `NOTIFY flagstone_publish, '<environment_id>:<revision>'` in the publishing transaction, so
//! listeners hear of a publish exactly when it becomes visible. SQLite has no such channel; there the
//! worker runs in the serving process and announces publishes in-process (flagstone-tasks).
//!
//! A deleted environment is announced on the same channel (`'<environment_id>:deleted'`, sent
//! by the deleting change's transaction), so edges in other processes stop serving its keys the
//! moment the deletion commits instead of at their next periodic check. In the deleting process
//! itself, listeners registered with `Store::on_environment_deleted` run before the change's
//! `commit` returns.

use sqlx::postgres::PgListener;

use crate::{Result, Store, Tx};

pub const PUBLISH_CHANNEL: &str = "flagstone_publish";

/// A listener on the publish channel, or `None` on SQLite.
pub async fn listen(store: &Store) -> Result<Option<PgListener>> {
    match &store.pool {
        crate::db::Pool::Postgres(pool) => {
            let mut l = PgListener::connect_with(pool).await?;
            l.listen(PUBLISH_CHANNEL).await?;
            Ok(Some(l))
        }
        crate::db::Pool::Sqlite { .. } => Ok(None),
    }
}

/// Announces a publish to every listener when `tx` commits (PostgreSQL; nothing on SQLite).
pub async fn notify_published(tx: &mut Tx, environment_id: i64, revision: i64) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PUBLISH_CHANNEL)
            .bind(format!("{environment_id}:{revision}"))
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// [`notify_published`] for several `(environment_id, revision)` publishes in one statement.
pub async fn notify_published_many(tx: &mut Tx, published: &[(i64, i64)]) -> Result<()> {
    if let (Tx::Postgres(t), false) = (&mut *tx, published.is_empty()) {
        let payloads: Vec<String> = published
            .iter()
            .map(|(env, revision)| format!("{env}:{revision}"))
            .collect();
        sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(PUBLISH_CHANNEL)
            .bind(payloads)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// Announces, when `tx` commits, that an environment no longer exists (PostgreSQL; nothing on
/// SQLite, where every edge runs in the deleting process).
pub async fn notify_deleted(tx: &mut Tx, environment_id: i64) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PUBLISH_CHANNEL)
            .bind(format!("{environment_id}:deleted"))
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// What a notification on the publish channel announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The environment's document at this revision is published.
    Published { environment_id: i64, revision: i64 },
    /// The environment was deleted: its keys must stop working.
    Deleted { environment_id: i64 },
}

/// Parses a notification payload: `"<environment_id>:<revision>"` or
/// `"<environment_id>:deleted"`.
pub fn parse_notification(payload: &str) -> Option<Notice> {
    let (env, what) = payload.split_once(':')?;
    let environment_id = env.parse().ok()?;
    if what == "deleted" {
        return Some(Notice::Deleted { environment_id });
    }
    Some(Notice::Published {
        environment_id,
        revision: what.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_notification, Notice};

    #[test]
    fn parses_payloads() {
        assert_eq!(
            parse_notification("12:345"),
            Some(Notice::Published {
                environment_id: 12,
                revision: 345
            })
        );
        assert_eq!(
            parse_notification("12:deleted"),
            Some(Notice::Deleted { environment_id: 12 })
        );
        assert_eq!(parse_notification("12"), None);
        assert_eq!(parse_notification("a:1"), None);
        assert_eq!(parse_notification("12:gone"), None);
    }
}
