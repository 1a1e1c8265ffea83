//! The database options shared by every subcommand that touches the store.

use flagstone_store::{ConnectOptions, Store};

#[derive(clap::Args, Clone, Debug)]
pub struct DbArgs {
    /// Database URL: `sqlite://path.db` (embedded, the default) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "FLAGSTONE_DATABASE_URL",
        default_value = "sqlite://flagstone.db"
    )]
    pub database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "FLAGSTONE_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
}

impl DbArgs {
    /// Opens the store and runs pending migrations.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let mut opts = ConnectOptions::new(self.database_url.clone());
        opts.max_connections = self.database_max_connections;
        Store::open(&opts).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open database {}: {e}",
                flagstone_store::db::redact_url(&self.database_url)
            )
        })
    }
}
