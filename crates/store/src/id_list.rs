//! A set of ids bound as one parameter: `environment_id IN (1, 2, 3)` written into a
//! statement's text makes every set a new statement, which PostgreSQL parses and plans afresh
//! and which pushes the hot statements out of each connection's prepared-statement cache (a
//! `perf` profile of a 1,000-environment burst showed PostgreSQL's parser and planner among its
//! top costs). [`IdList`] keeps the text fixed: PostgreSQL binds a `bigint[]` (`= ANY($n)`),
//! SQLite a JSON array read by `json_each` ([`any_of`] writes the matching condition).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo};
use sqlx::{Encode, Postgres, Sqlite, Type};

use crate::Backend;

/// Ids bound as a single parameter (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdList(pub Vec<i64>);

/// `<column> <condition>` matching any id of the [`IdList`] bound as parameter `$param`.
pub fn any_of(backend: Backend, column: &str, param: usize) -> String {
    match backend {
        Backend::Postgres => format!("{column} = ANY(${param})"),
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${param}))"),
    }
}

impl Type<Postgres> for IdList {
    fn type_info() -> PgTypeInfo {
        <Vec<i64> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for IdList {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&[i64] as Encode<Postgres>>::encode(self.0.as_slice(), buf)
    }
}

impl Type<Sqlite> for IdList {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for IdList {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        let ids: Vec<String> = self.0.iter().map(i64::to_string).collect();
        <String as Encode<Sqlite>>::encode(format!("[{}]", ids.join(",")), buf)
    }
}
