//! Inserting rows with the ids they had in Flagsmith. Ids feed bucketing hashes (see the module
//! docs of [`super`]), so an import asks for the document's id and takes any free one only when
//! that id is used already. Both backends accept explicit ids (SQLite `AUTOINCREMENT` moves its
//! counter past them itself); on PostgreSQL the identity sequences are moved past the largest
//! explicit id at the end, so later inserts never collide with imported rows.

use std::collections::BTreeMap;

use crate::{Result, Tx};

/// The largest explicit id written per table, for [`Ids::bump_sequences`].
#[derive(Default)]
pub(crate) struct Ids {
    max: BTreeMap<&'static str, i64>,
}

/// `INSERT INTO table (cols…) VALUES ($1…) RETURNING id`, with an explicit `id` first (and
/// `ON CONFLICT (id) DO NOTHING`, so a used id yields no row) when `explicit`.
pub(crate) fn insert_sql(table: &str, cols: &[&str], explicit: bool) -> String {
    let offset = usize::from(explicit);
    let placeholders: Vec<String> = (1..=cols.len() + offset).map(|i| format!("${i}")).collect();
    if explicit {
        format!(
            "INSERT INTO {table} (id, {}) VALUES ({}) ON CONFLICT (id) DO NOTHING RETURNING id",
            cols.join(", "),
            placeholders.join(", ")
        )
    } else {
        format!(
            "INSERT INTO {table} ({}) VALUES ({}) RETURNING id",
            cols.join(", "),
            placeholders.join(", ")
        )
    }
}

impl Ids {
    pub fn record(&mut self, table: &'static str, id: i64) {
        let m = self.max.entry(table).or_insert(id);
        if id > *m {
            *m = id;
        }
    }

    /// PostgreSQL: moves each touched table's identity sequence past its largest explicit id
    /// (never backwards: `nextval` first, so ids handed out meanwhile stay below).
    pub async fn bump_sequences(&self, tx: &mut Tx) -> Result<()> {
        if let Tx::Postgres(t) = tx {
            for (table, max) in &self.max {
                sqlx::query(
                    "SELECT setval(pg_get_serial_sequence($1, 'id'), \
                         GREATEST(nextval(pg_get_serial_sequence($1, 'id')), $2))",
                )
                .bind(*table)
                .bind(*max)
                .execute(&mut **t)
                .await?;
            }
        }
        Ok(())
    }
}

/// Runs an insert built by [`insert_sql`]: first with `want` as the id, then — if that id is
/// used, or there is none — without. Returns the id and whether it is `want`.
macro_rules! insert_with_id {
    ($tx:expr, $ids:expr, $table:literal, [$($col:literal),+], $want:expr, |$q:ident| $binds:expr) => {{
        let want: Option<i64> = $want;
        let mut got: Option<i64> = None;
        if let Some(w) = want {
            let text = $crate::transfer::ids::insert_sql($table, &[$($col),+], true);
            got = $crate::sql!(&mut *$tx, |c| {
                let $q = sqlx::query_scalar::<_, i64>(&text).bind(w);
                $binds.fetch_optional(c).await?
            });
            if let Some(id) = got {
                $ids.record($table, id);
            }
        }
        match got {
            Some(id) => (id, true),
            None => {
                let text = $crate::transfer::ids::insert_sql($table, &[$($col),+], false);
                let id: i64 = $crate::sql!(&mut *$tx, |c| {
                    let $q = sqlx::query_scalar::<_, i64>(&text);
                    $binds.fetch_one(c).await?
                });
                (id, false)
            }
        }
    }};
}
pub(crate) use insert_with_id;

#[cfg(test)]
mod tests {
    use super::insert_sql;

    #[test]
    fn sql_text() {
        assert_eq!(
            insert_sql("t", &["a", "b"], true),
            "INSERT INTO t (id, a, b) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        assert_eq!(
            insert_sql("t", &["a"], false),
            "INSERT INTO t (a) VALUES ($1) RETURNING id"
        );
    }
}
