//! Publish notifications across processes (PostgreSQL): [`notify_published`] sends
//! `NOTIFY flagstone_publish, '<environment_id>:<revision>'` in the publishing transaction, so
//! listeners hear of a publish exactly when it becomes visible. SQLite has no such channel; there the
//! worker runs in the serving process and announces publishes in-process (flagstone-tasks).

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

/// Parses a notification payload `"<environment_id>:<revision>"`.
pub fn parse_notification(payload: &str) -> Option<(i64, i64)> {
    let (env, rev) = payload.split_once(':')?;
    Some((env.parse().ok()?, rev.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_payloads() {
        assert_eq!(super::parse_notification("12:345"), Some((12, 345)));
        assert_eq!(super::parse_notification("12"), None);
        assert_eq!(super::parse_notification("a:1"), None);
    }
}
