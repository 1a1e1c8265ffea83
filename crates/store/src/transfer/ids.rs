//! Inserting rows with the ids they had in Flagsmith where those are free (so the admin API's
//! ids look familiar), and keeping every id's sequence past the ids an import wrote — as row
//! ids or as hashing ids (`hash_id`). Rows created later take their row id as hashing id, so
//! this is what keeps them from ever sharing one with an imported row (see the module docs of
//! [`super`]). Both backends accept explicit ids; [`Ids::bump_sequences`] moves SQLite's
//! `sqlite_sequence` and PostgreSQL's identity sequences at the end of the import.

use std::collections::BTreeMap;

use crate::{Result, Tx};

/// The largest explicit or hashing id written per table, for [`Ids::bump_sequences`].
#[derive(Default)]
pub(crate) struct Ids {
    /// Per table: the largest id recorded, and whether the sequence may still be below it.
    max: BTreeMap<&'static str, (i64, bool)>,
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
    /// A hashing id written to `table`: rows created later must get larger ids.
    pub fn record_hash(&mut self, table: &'static str, id: i64) {
        self.record(table, id);
    }

    pub fn record(&mut self, table: &'static str, id: i64) {
        let m = self.max.entry(table).or_insert((id, true));
        if id > m.0 {
            *m = (id, true);
        }
    }

    /// Moves `table`'s sequence past its recorded ids if it may be behind (before an insert
    /// that takes the sequence's next id).
    pub async fn bump_table(&mut self, tx: &mut Tx, table: &'static str) -> Result<()> {
        if let Some((max, dirty)) = self.max.get_mut(table) {
            if *dirty {
                bump(tx, table, *max).await?;
                *dirty = false;
            }
        }
        Ok(())
    }

    /// Moves each touched table's id sequence past its largest recorded id.
    pub async fn bump_sequences(&mut self, tx: &mut Tx) -> Result<()> {
        let tables: Vec<&'static str> = self.max.keys().copied().collect();
        for table in tables {
            self.bump_table(tx, table).await?;
        }
        Ok(())
    }
}

/// Moves `table`'s id sequence to at least `max`, never backwards (PostgreSQL: `nextval`
/// first, so ids handed out meanwhile stay below).
async fn bump(tx: &mut Tx, table: &str, max: i64) -> Result<()> {
    match tx {
        Tx::Postgres(t) => {
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence($1, 'id'), \
                     GREATEST(nextval(pg_get_serial_sequence($1, 'id')), $2))",
            )
            .bind(table)
            .bind(max)
            .execute(&mut **t)
            .await?;
        }
        Tx::Sqlite(t, _) => {
            // AUTOINCREMENT never hands out an id at or below `seq`.
            sqlx::query("UPDATE sqlite_sequence SET seq = $2 WHERE name = $1 AND seq < $2")
                .bind(table)
                .bind(max)
                .execute(&mut **t)
                .await?;
            sqlx::query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT $1, $2 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
            )
            .bind(table)
            .bind(max)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
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
                // The sequence may still be below ids this import wrote explicitly.
                $ids.bump_table($tx, $table).await?;
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
