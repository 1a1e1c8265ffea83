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
    /// The store `flagstone edge` serves from. A PostgreSQL store connects on first use and
    /// migrates in the background, so an edge listens and serves its cached documents at once
    /// however the database is doing (refusing, or a host that never answers, which a connect
    /// would wait out); it picks the database up when it answers. SQLite opens as usual.
    pub async fn open_or_lazy(&self) -> anyhow::Result<Store> {
        if !self.database_url.starts_with("postgres") {
            return self.open().await;
        }
        let store = Store::connect_lazy(&self.connect_options())?
            .with_publish_settings(self.publish_settings());
        let migrating = store.clone();
        let url = flagstone_store::db::redact_url(&self.database_url);
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_secs(1);
            while let Err(e) = migrating.migrate().await {
                tracing::warn!(
                    error = %e,
                    database = %url,
                    "cannot reach or migrate the store; serving the cached documents until it answers"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        });
        Ok(store)
    }

    fn connect_options(&self) -> ConnectOptions {
        let mut opts = ConnectOptions::new(self.database_url.clone());
        opts.max_connections = self.database_max_connections;
        opts
    }

    fn publish_settings(&self) -> PublishSettings {
        PublishSettings {
            debounce_ms: self.publish_debounce_ms as i64,
            max_delay_ms: self.publish_max_delay_ms.max(self.publish_debounce_ms) as i64,
        }
    }

    /// Opens the store and runs pending migrations.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let store = Store::open(&self.connect_options()).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open database {}: {e}",
                flagstone_store::db::redact_url(&self.database_url)
            )
        })?;
        Ok(store.with_publish_settings(self.publish_settings()))
    }
}
