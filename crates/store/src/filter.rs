//! `WHERE` clauses holding only the filters a caller gave.
//!
//! A list query written once with optional filters (`$2 IS NULL OR feature_id = $2`) gets one
//! plan for every combination: PostgreSQL's generic plan (pooled connections switch to it after
//! five executions) cannot use an index for a condition that may be switched off, and with
//! `ORDER BY id LIMIT` it walks the whole table by its primary key. Writing only the filters
//! present gives each combination its own statement and its own indexed plan. Placeholders are
//! numbered in the order the conditions are added; the caller binds the values it has, in the
//! same order (see [`Where::placeholder`] for `LIMIT`/`OFFSET` after them).

/// Conditions joined by `AND`, with `$n` placeholders numbered as they are added.
#[derive(Debug, Default)]
pub(crate) struct Where {
    parts: Vec<String>,
    params: usize,
}

impl Where {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `condition`, each `?` of it replaced by the next placeholder (one value to bind).
    pub(crate) fn bound(mut self, condition: &str) -> Self {
        let p = self.placeholder();
        self.parts.push(condition.replace('?', &p));
        self
    }

    /// Adds `condition` with its placeholder when `present` (the caller binds a value for it
    /// only then).
    pub(crate) fn bound_if(self, present: bool, condition: &str) -> Self {
        if present {
            self.bound(condition)
        } else {
            self
        }
    }

    /// Adds a condition without parameters (written by the store, never from input).
    pub(crate) fn fixed(mut self, condition: impl Into<String>) -> Self {
        self.parts.push(condition.into());
        self
    }

    /// The next placeholder, for a value bound after the conditions' (`LIMIT`, `OFFSET`).
    pub(crate) fn placeholder(&mut self) -> String {
        self.params += 1;
        format!("${}", self.params)
    }

    /// The conditions joined by `AND` (`1 = 1` when there are none).
    pub(crate) fn sql(&self) -> String {
        if self.parts.is_empty() {
            "1 = 1".to_string()
        } else {
            self.parts.join(" AND ")
        }
    }
}

/// Binds each `Some` of `$value`s to `$query`, in order (the values [`Where::bound_if`] added
/// placeholders for).
#[macro_export]
#[doc(hidden)]
macro_rules! bind_present {
    ($query:expr $(, $value:expr)* $(,)?) => {
        // A `match`, not a `let`: temporaries of `$query` (its `&format!(…)` text) live to the
        // end of the caller's statement.
        match $query {
            #[allow(unused_mut)]
            mut q => {
                $(
                    if let Some(v) = $value {
                        q = q.bind(v);
                    }
                )*
                q
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Where;

    #[test]
    fn numbers_only_the_conditions_present() {
        let mut w = Where::new()
            .bound("environment_id = ?")
            .bound_if(false, "feature_id = ?")
            .bound_if(true, "segment_id = ?")
            .fixed("deleted_at IS NULL");
        let limit = w.placeholder();
        assert_eq!(
            w.sql(),
            "environment_id = $1 AND segment_id = $2 AND deleted_at IS NULL"
        );
        assert_eq!(limit, "$3");
        assert_eq!(Where::new().sql(), "1 = 1");
    }
}
