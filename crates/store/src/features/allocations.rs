//! The allocation rule shared by options, states and overrides: the percentages a state or
//! segment override gives a feature's options — those it lists plus the defaults of those it
//! does not (see `values`) — add up to at most 100, and name only options of that feature.

use std::collections::HashMap;

use super::options;
use crate::values::{decode_allocations, encode_allocations, validate_allocations, MvAllocation};
use crate::{sql, Result, StoreError, Tx};

/// Allowance for float rounding when summing percentages.
pub(crate) const EPSILON: f64 = 1e-9;

/// The percentage a state allocates in total: its listed allocations plus the defaults of the
/// options it does not list.
pub(crate) fn effective_total(allocs: &[MvAllocation], defaults: &HashMap<i64, f64>) -> f64 {
    let listed: f64 = allocs.iter().map(|a| a.percentage_allocation).sum();
    let unlisted: f64 = defaults
        .iter()
        .filter(|(id, _)| !allocs.iter().any(|a| a.multivariate_feature_option == **id))
        .map(|(_, pct)| pct)
        .sum();
    listed + unlisted
}

/// Checks allocations for a state or override of `feature_id`: in range, each option once and
/// of this feature, and at most 100% in effect. Call with the feature locked.
pub async fn validate_feature_allocations(
    tx: &mut Tx,
    field: &str,
    feature_id: i64,
    allocs: &[MvAllocation],
) -> Result<()> {
    validate_allocations(field, allocs)?;
    let defaults: HashMap<i64, f64> = options::all_of(tx, feature_id)
        .await?
        .into_iter()
        .map(|o| (o.id, o.default_percentage_allocation))
        .collect();
    if let Some(a) = allocs
        .iter()
        .find(|a| !defaults.contains_key(&a.multivariate_feature_option))
    {
        return Err(StoreError::invalid(
            field,
            format!(
                "{} is not a multivariate option of this feature",
                a.multivariate_feature_option
            ),
        ));
    }
    let total = effective_total(allocs, &defaults);
    if total > 100.0 + EPSILON {
        return Err(StoreError::invalid(
            field,
            format!(
                "allocations sum to {total}% counting the defaults of unlisted options, \
                 more than 100"
            ),
        ));
    }
    Ok(())
}

/// Checks that every state and segment override of the feature would still allocate at most
/// 100% if the options' defaults were `defaults` (an unlisted option gets its default).
pub(crate) async fn check_states_fit(
    tx: &mut Tx,
    feature_id: i64,
    defaults: &HashMap<i64, f64>,
) -> Result<()> {
    let rows: Vec<(i64, String)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT environment_id, mv_allocations FROM feature_states \
             WHERE feature_id = $1 AND mv_allocations <> '[]' \
             UNION ALL SELECT environment_id, mv_allocations FROM segment_overrides \
             WHERE feature_id = $1 AND mv_allocations <> '[]'",
        )
        .bind(feature_id)
        .fetch_all(c)
        .await?
    });
    for (environment_id, allocs) in rows {
        let total = effective_total(&decode_allocations(&allocs)?, defaults);
        if total > 100.0 + EPSILON {
            return Err(StoreError::invalid(
                "default_percentage_allocation",
                format!(
                    "a state of this feature in environment {environment_id} would allocate \
                     {total}%, more than 100; lower its allocations first"
                ),
            ));
        }
    }
    Ok(())
}

/// Rewrites the allocations in `table` (a fixed table name, never user input) that list `option`.
pub(crate) async fn strip_option(
    tx: &mut Tx,
    table: &str,
    feature_id: i64,
    option: i64,
) -> Result<()> {
    let rows: Vec<(i64, String)> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT id, mv_allocations FROM {table} WHERE feature_id = $1 \
             AND mv_allocations <> '[]'"
        ))
        .bind(feature_id)
        .fetch_all(c)
        .await?
    });
    for (row_id, allocs) in rows {
        let mut allocs = decode_allocations(&allocs)?;
        let n = allocs.len();
        allocs.retain(|a| a.multivariate_feature_option != option);
        if allocs.len() == n {
            continue;
        }
        let encoded = encode_allocations(&allocs);
        sql!(tx, |c| {
            sqlx::query(&format!(
                "UPDATE {table} SET mv_allocations = $2 WHERE id = $1"
            ))
            .bind(row_id)
            .bind(&encoded)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_options_count_at_their_default() {
        let defaults = HashMap::from([(1, 30.0), (2, 50.0)]);
        let listed = [MvAllocation {
            multivariate_feature_option: 1,
            percentage_allocation: 10.0,
        }];
        assert_eq!(effective_total(&listed, &defaults), 60.0);
        assert_eq!(effective_total(&[], &defaults), 80.0);
    }
}
