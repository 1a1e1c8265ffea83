//! The database options shared by every subcommand that touches the store.

use flagstone_store::{ConnectOptions, PublishSettings, Store};

#[derive(clap::Args, Clone, Debug)]
pub struct DbArgs {
    /// Database URL: `sqlite://path.db` (embedded, the default) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "FLAGSTONE_DATABASE_URL",
        // It may hold a password: `--help` must not show the variable's value.
        hide_env_values = true,
        default_value = "sqlite://flagstone.db"
    )]
    pub database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "FLAGSTONE_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a burst of changes to one environment settles before its document is rebuilt,
    /// in milliseconds.
    #[arg(long, env = "FLAGSTONE_PUBLISH_DEBOUNCE_MS", default_value_t = 50)]
    pub publish_debounce_ms: u64,
    /// The longest a constant stream of changes can delay a rebuild, in milliseconds.
    #[arg(long, env = "FLAGSTONE_PUBLISH_MAX_DELAY_MS", default_value_t = 1000)]
    pub publish_max_delay_ms: u64,
}

impl DbArgs {
    /// Opens the store; if it is a PostgreSQL store that cannot be reached now, one that
    /// connects on first use instead (`flagstone edge` starts on its cached documents and picks
    /// the database up when it returns). Nothing is migrated on that path.
    pub async fn open_or_lazy(&self) -> anyhow::Result<Store> {
        let postgres = self.database_url.starts_with("postgres");
        // Not the pool's 10 s: an edge with documents to serve should not wait that long.
        let opened =
            match tokio::time::timeout(std::time::Duration::from_secs(3), self.open()).await {
                Ok(opened) => opened,
                Err(_) => Err(anyhow::anyhow!(
                    "cannot open database {}: no connection within 3 s",
                    flagstone_store::db::redact_url(&self.database_url)
                )),
            };
        match opened {
            Ok(store) => Ok(store),
            Err(e) if postgres => {
                tracing::warn!(
                    error = %e,
                    "the store is unreachable at start; serving the cached documents until it is back"
                );
                let mut opts = ConnectOptions::new(self.database_url.clone());
                opts.max_connections = self.database_max_connections;
                Ok(Store::connect_lazy(&opts)?)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the store and runs pending migrations.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let mut opts = ConnectOptions::new(self.database_url.clone());
        opts.max_connections = self.database_max_connections;
        let publish = PublishSettings {
            debounce_ms: self.publish_debounce_ms as i64,
            max_delay_ms: self.publish_max_delay_ms.max(self.publish_debounce_ms) as i64,
        };
        let store = Store::open(&opts).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open database {}: {e}",
                flagstone_store::db::redact_url(&self.database_url)
            )
        })?;
        Ok(store.with_publish_settings(publish))
    }
}
