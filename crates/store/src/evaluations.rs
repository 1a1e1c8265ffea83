//! Flag usage: how often each feature was evaluated, per environment and hour, and which
//! features are stale. Edges count evaluations in memory and hand this module one batch per
//! flush ([`record`]); nothing here is on a request's path. Rows past the retention are deleted
//! in bounded batches by the task processor ([`prune`]). Reads: the daily series of
//! `GET …/features/{id}/evaluation-data/` ([`daily`]), each state's `last_evaluated_at` (read
//! with the state, see `features::states`) and the stale features of a project ([`stale`]).

mod stale;

use std::collections::BTreeMap;

use serde::Serialize;

pub use stale::{decide, stale, FeatureFacts, StaleReason, StaleRule, StaleSettings};

use crate::{sql, Result, Tx};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Evaluations of one feature in one environment during one hour, as a flush adds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageDelta {
    pub environment_id: i64,
    pub feature_id: i64,
    /// Start of the hour (Unix ms, a multiple of [`HOUR_MS`]).
    pub hour: i64,
    /// Counted by SDKs and sent to `/api/v1/analytics/flags/`.
    pub reported: i64,
    /// Evaluated by the edge for its own responses.
    pub served: i64,
    /// When the flush that counted them ran (Unix ms).
    pub at: i64,
}

/// The start of the hour holding `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Adds a batch of counts in the caller's transaction: one upsert per (environment, feature,
/// hour). Counts of a feature or environment deleted since they were counted are skipped, so a
/// deletion cannot fail the batch. Returns the rows written.
pub async fn record(tx: &mut Tx, batch: &[UsageDelta]) -> Result<u64> {
    let mut written = 0;
    for d in batch {
        written += sql!(&mut *tx, |c| {
            sqlx::query(
                "INSERT INTO feature_evaluations \
                     (environment_id, feature_id, hour, reported, served, last_evaluated_at) \
                 SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM features f \
                     JOIN environments e ON e.project_id = f.project_id \
                     WHERE f.id = $2 AND e.id = $1) \
                 ON CONFLICT (environment_id, feature_id, hour) DO UPDATE SET \
                     reported = feature_evaluations.reported + excluded.reported, \
                     served = feature_evaluations.served + excluded.served, \
                     last_evaluated_at = CASE \
                         WHEN excluded.last_evaluated_at > feature_evaluations.last_evaluated_at \
                         THEN excluded.last_evaluated_at \
                         ELSE feature_evaluations.last_evaluated_at END",
            )
            .bind(d.environment_id)
            .bind(d.feature_id)
            .bind(d.hour)
            .bind(d.reported)
            .bind(d.served)
            .bind(d.at)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(written)
}

/// Deletes at most `limit` hourly rows older than `before_ms` (Unix ms) in the caller's
/// transaction, oldest first, and returns how many it deleted; the caller repeats it in
/// separate transactions until fewer than `limit` come back, so no one transaction holds many
/// row locks or grows the write-ahead log. The latest row of each (environment, feature) is
/// kept however old it is: it carries `last_evaluated_at`, and without it a feature last
/// served before the cutoff would look never evaluated (and stale for that reason).
pub async fn prune(tx: &mut Tx, before_ms: i64, limit: i64) -> Result<u64> {
    Ok(sql!(tx, |c| {
        sqlx::query(
            "DELETE FROM feature_evaluations WHERE (environment_id, feature_id, hour) IN ( \
                 SELECT o.environment_id, o.feature_id, o.hour FROM feature_evaluations o \
                 WHERE o.hour < $1 AND EXISTS (SELECT 1 FROM feature_evaluations n \
                     WHERE n.environment_id = o.environment_id \
                     AND n.feature_id = o.feature_id AND n.hour > o.hour) \
                 ORDER BY o.hour LIMIT $2)",
        )
        .bind(hour_of(before_ms))
        .bind(limit.max(1))
        .execute(c)
        .await?
        .rows_affected()
    }))
}

/// One day of a feature's evaluations in one environment (Flagsmith's `{day, count, labels}`,
/// with the two sources beside their sum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvaluationDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// `reported + served`.
    pub count: i64,
    /// Evaluations SDKs reported to `/api/v1/analytics/flags/`.
    pub reported: i64,
    /// Evaluations the edge made for its own responses (`/flags/`, `/identities/`).
    pub served: i64,
    /// Flagsmith's SDK labels; Flagstone does not record them (always null).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<serde_json::Value>,
}

/// The days since `since_ms` on which the feature was evaluated in the environment, oldest
/// first (days without evaluations are left out, as Flagsmith does).
pub async fn daily(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    since_ms: i64,
) -> Result<Vec<EvaluationDay>> {
    let rows: Vec<(i64, i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT hour, reported, served FROM feature_evaluations \
             WHERE environment_id = $1 AND feature_id = $2 AND hour >= $3 ORDER BY hour",
        )
        .bind(environment_id)
        .bind(feature_id)
        .bind(hour_of(since_ms))
        .fetch_all(c)
        .await?
    });
    let mut days: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (hour, reported, served) in rows {
        let day = days.entry(hour.div_euclid(DAY_MS)).or_default();
        day.0 += reported;
        day.1 += served;
    }
    Ok(days
        .into_iter()
        .map(|(day, (reported, served))| EvaluationDay {
            day: day_name(day),
            count: reported + served,
            reported,
            served,
            labels: None,
        })
        .collect())
}

/// `YYYY-MM-DD` of the `n`th day since the Unix epoch.
fn day_name(n: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(n * 86_400)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&fmt).unwrap_or_default()
}

/// When each feature of the project was last evaluated in any of its environments (features
/// never evaluated are absent).
pub async fn last_evaluated_by_feature(
    tx: &mut Tx,
    project_id: i64,
) -> Result<std::collections::HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT u.feature_id, MAX(u.last_evaluated_at) FROM feature_evaluations u \
             JOIN features f ON f.id = u.feature_id WHERE f.project_id = $1 \
             GROUP BY u.feature_id",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_days() {
        assert_eq!(hour_of(HOUR_MS * 5 + 17), HOUR_MS * 5);
        assert_eq!(hour_of(-1), -HOUR_MS);
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(19_552), "2023-07-14");
    }
}
