//! Claim sessions: what ties a worker's claims to the worker being alive, so a job held by a
//! process that died is reclaimed at once instead of after its lease (30 s by default).
//!
//! A worker opens one [`ClaimSession`] and writes its random key into every job it claims
//! (`publish_jobs.lease_session`). The session holds a lock that the operating system or the
//! database server releases the moment the holder goes away, whatever the way it goes:
//!
//! - **PostgreSQL**: a session-level advisory lock on the key, taken on a connection of its own
//!   (outside the pool, so nothing recycles it). SIGKILL, a crash or a cut connection ends the
//!   backend and the server drops the lock. A keeper pings the connection; if it fails the
//!   session reports itself [lost](ClaimSession::lost) so the worker stops its builds (another
//!   worker may already be reclaiming them) and opens a new session.
//! - **SQLite**: an exclusive `flock` on `<database>-claims/<key>.lock`, which the kernel
//!   releases when the process dies. An in-memory database has no other process: a session is
//!   live while this process holds it.
//!
//! [`claimant_alive`] is the check a claimant makes (inside its claim transaction) for a
//! running job: on PostgreSQL it tries the key as a transaction-level advisory lock, which only
//! succeeds once the holder's session lock is gone. The lease stays as the backstop for a
//! claimant that is alive but stalled.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use crate::db::Pool;
use crate::{sql, Result, Store, StoreError, Tx};

/// How often the PostgreSQL keeper checks its connection; a cut connection is noticed within
/// about this long (plus [`PING_TIMEOUT`] when the server stops answering altogether).
pub const PING_EVERY: Duration = Duration::from_millis(250);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Keys of the sessions this process holds (in-memory SQLite has nothing else to ask).
static LIVE: LazyLock<Mutex<HashSet<i64>>> = LazyLock::new(Default::default);

/// A worker's claim session; claims written with its [`key`](ClaimSession::key) hold while it
/// lives. Dropping it ends the session (its jobs become reclaimable at once).
pub struct ClaimSession {
    owner: String,
    key: i64,
    lost: watch::Receiver<bool>,
    hold: Hold,
}

enum Hold {
    /// The keeper task owns the connection that holds the advisory lock.
    Postgres(tokio::task::JoinHandle<()>),
    /// The locked file (`None` in memory), removed when the session ends cleanly. Nothing
    /// but the process's end can end it, so `lost` never fires (its sender is kept here).
    Sqlite {
        file: Option<(std::fs::File, PathBuf)>,
        _lost: watch::Sender<bool>,
    },
}

impl std::fmt::Debug for ClaimSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimSession")
            .field("owner", &self.owner)
            .field("key", &self.key)
            .finish()
    }
}

impl ClaimSession {
    /// Opens a session for the worker named `owner`.
    pub async fn open(store: &Store, owner: &str) -> Result<ClaimSession> {
        let (lost_tx, lost) = watch::channel(false);
        let (key, hold) = match &store.pool {
            Pool::Postgres(pool) => {
                let mut conn = sqlx::PgConnection::connect_with(&*pool.connect_options()).await?;
                // Random keys never repeat in practice; a taken one is simply drawn again.
                let key = loop {
                    let key = random_key();
                    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                        .bind(key)
                        .fetch_one(&mut conn)
                        .await?;
                    if got {
                        break key;
                    }
                };
                let keeper = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(PING_EVERY).await;
                        let ok = matches!(
                            tokio::time::timeout(PING_TIMEOUT, conn.ping()).await,
                            Ok(Ok(()))
                        );
                        if !ok {
                            tracing::warn!(
                                session = key,
                                "claim session connection lost; its claims may be taken over"
                            );
                            let _ = lost_tx.send(true);
                            return; // drops the connection: the server releases the lock
                        }
                    }
                });
                (key, Hold::Postgres(keeper))
            }
            Pool::Sqlite { path, .. } => {
                let key = random_key();
                let file = match path {
                    Some(db) => Some(lock_file(db, key)?),
                    None => None,
                };
                (
                    key,
                    Hold::Sqlite {
                        file,
                        _lost: lost_tx,
                    },
                )
            }
        };
        LIVE.lock().expect("live sessions").insert(key);
        Ok(ClaimSession {
            owner: owner.to_string(),
            key,
            lost,
            hold,
        })
    }

    /// The worker's name, written as each claim's `lease_owner`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The key written as each claim's `lease_session`.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Becomes `true` when the session ended under the worker (its database connection
    /// dropped): claims made with it may be taken over, so their builds must stop.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

impl Drop for ClaimSession {
    fn drop(&mut self) {
        LIVE.lock().expect("live sessions").remove(&self.key);
        match &mut self.hold {
            Hold::Postgres(keeper) => keeper.abort(),
            Hold::Sqlite { file, .. } => {
                if let Some((f, path)) = file.take() {
                    let _ = std::fs::remove_file(&path);
                    drop(f);
                }
            }
        }
    }
}

fn random_key() -> i64 {
    use rand::Rng;
    // Positive keys keep lock file names plain.
    rand::thread_rng().gen_range(1..i64::MAX)
}

/// Where the lock files of sessions on the database file `db` live.
fn claims_dir(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-claims");
    db.with_file_name(name)
}

fn lock_path(db: &Path, key: i64) -> PathBuf {
    claims_dir(db).join(format!("{key}.lock"))
}

fn lock_file(db: &Path, key: i64) -> Result<(std::fs::File, PathBuf)> {
    let io = |e: std::io::Error| StoreError::Config(format!("claim session lock file: {e}"));
    std::fs::create_dir_all(claims_dir(db)).map_err(io)?;
    let path = lock_path(db, key);
    let file = std::fs::File::create(&path).map_err(io)?;
    file.try_lock().map_err(|e| io(std::io::Error::other(e)))?;
    Ok((file, path))
}

/// Whether the claim session `key` still lives, asked inside the claiming transaction `tx` of
/// `store`. On PostgreSQL a dead session's key stays locked by `tx` until it ends, so two
/// claimants never both see it dead and reclaim the same job.
pub(crate) async fn claimant_alive(store: &Store, tx: &mut Tx, key: i64) -> Result<bool> {
    if LIVE.lock().expect("live sessions").contains(&key) {
        return Ok(true);
    }
    match &store.pool {
        Pool::Postgres(_) => {
            let took: bool = sql!(tx, |c| {
                sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(key)
                    .fetch_one(c)
                    .await?
            });
            Ok(!took)
        }
        Pool::Sqlite { path: None, .. } => Ok(false),
        Pool::Sqlite { path: Some(db), .. } => {
            let path = lock_path(db, key);
            let file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                // Removed: its holder ended cleanly (or it was never created).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => {
                    return Err(StoreError::Config(format!(
                        "claim session lock file {}: {e}",
                        path.display()
                    )))
                }
            };
            match file.try_lock() {
                Ok(()) => {
                    // The holder died without cleaning up: tidy its file.
                    let _ = std::fs::remove_file(&path);
                    Ok(false)
                }
                Err(std::fs::TryLockError::WouldBlock) => Ok(true),
                Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Config(format!(
                    "claim session lock file {}: {e}",
                    path.display()
                ))),
            }
        }
    }
}
