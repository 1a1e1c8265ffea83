//! Writing the last-good cache: each environment's newest document and its metadata, kept in
//! the cache directory so that a restarted edge serves at once, before its source answers.
//!
//! [`CacheWriter`] does the writing on a thread of its own, off the path that installs
//! documents: a `perf` profile of `serve` during a 1,000-environment burst had about 40 % of its
//! CPU in these writes, between one document's install and the next, and the burst was served
//! 0.55–0.6x as fast without them. Writes waiting for the thread are coalesced per environment
//! (only the newest revision is written), so the backlog holds at most one document per
//! environment, shared with the registry rather than copied. A copy is atomic (written beside
//! the old one, then swapped in): a crash leaves the previous one, and a process killed right
//! after an install may restart one revision behind, which its source then brings up to date.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

/// Writes taken from the backlog at a time (a removal waits for at most these).
const WRITE_BATCH: usize = 64;

/// The last-good cache of one edge, written on a thread of its own (see the module docs).
/// Dropping it writes what is waiting, then stops the thread.
pub struct CacheWriter {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    work: Condvar,
    /// Held from taking writes off the backlog until they are on disk, and by a removal: a
    /// removal then never races a write of the same environment.
    io: Mutex<()>,
    /// True when nothing waits and nothing is being written.
    idle: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    waiting: HashMap<i64, Waiting>,
    closed: bool,
}

/// A document waiting to be written (owned: the install that queued it has moved on).
struct Waiting {
    revision: i64,
    etag: String,
    shares_second: bool,
    sdk_features: Option<String>,
    body: Bytes,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while writing a file leaves nothing half-updated in memory: carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CacheWriter {
    /// Starts the writing thread for `dir` (created on the first write).
    pub fn start(dir: PathBuf) -> CacheWriter {
        let shared = Arc::new(Shared {
            dir,
            state: Mutex::default(),
            work: Condvar::new(),
            io: Mutex::new(()),
            idle: watch::Sender::new(true),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("edge-cache-writer".into())
                .spawn(move || write_loop(&shared))
                .map_err(|e| tracing::warn!(error = %e, "cannot start the cache writer; writing in place"))
                .ok()
        };
        CacheWriter { shared, thread }
    }

    /// Queues the newest document of an environment (replacing any older one still waiting).
    pub fn write(&self, meta: &CachedMeta<'_>, body: Bytes) {
        let waiting = Waiting {
            revision: meta.revision,
            etag: meta.etag.to_string(),
            shares_second: meta.shares_second,
            sdk_features: meta.sdk_features.map(str::to_string),
            body,
        };
        if self.thread.is_none() {
            write_one(&self.shared.dir, meta.environment_id, &waiting);
            return;
        }
        let mut state = lock(&self.shared.state);
        state.waiting.insert(meta.environment_id, waiting);
        // Under the lock, so the thread cannot report idle in between and be overwritten.
        self.shared.idle.send_replace(false);
        drop(state);
        self.shared.work.notify_one();
    }

    /// Forgets an environment's copy, now: a write still waiting is dropped, one under way
    /// finishes first and is then removed. Returns once nothing of it is left on disk.
    pub fn remove(&self, env: i64) {
        let _io = lock(&self.shared.io);
        let mut state = lock(&self.shared.state);
        state.waiting.remove(&env);
        if state.waiting.is_empty() {
            // Nothing is being written either: the thread writes only while holding `io`.
            self.shared.idle.send_replace(true);
        }
        drop(state);
        remove_cached(&self.shared.dir, env);
    }

    /// Resolves once every document queued before the call is on disk.
    pub async fn written(&self) {
        let mut idle = self.shared.idle.subscribe();
        let _ = idle.wait_for(|idle| *idle).await;
    }

    /// Documents waiting to be written.
    pub fn waiting(&self) -> usize {
        lock(&self.shared.state).waiting.len()
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            // What is waiting is written before the edge goes (a graceful stop loses nothing).
            let _ = thread.join();
        }
    }
}

fn write_loop(shared: &Shared) {
    loop {
        {
            let mut state = lock(&shared.state);
            while state.waiting.is_empty() && !state.closed {
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.waiting.is_empty() {
                return;
            }
        }
        let io = lock(&shared.io);
        let batch: Vec<(i64, Waiting)> = {
            let mut state = lock(&shared.state);
            let envs: Vec<i64> = state.waiting.keys().take(WRITE_BATCH).copied().collect();
            envs.into_iter()
                .filter_map(|env| state.waiting.remove(&env).map(|w| (env, w)))
                .collect()
        };
        for (env, waiting) in &batch {
            write_one(&shared.dir, *env, waiting);
        }
        drop(batch);
        drop(io);
        let state = lock(&shared.state);
        if state.waiting.is_empty() {
            shared.idle.send_replace(true);
        }
    }
}

fn write_one(dir: &Path, env: i64, w: &Waiting) {
    let meta = CachedMeta {
        environment_id: env,
        revision: w.revision,
        etag: &w.etag,
        shares_second: w.shares_second,
        sdk_features: w.sdk_features.as_deref(),
    };
    write_cached(dir, &meta, &w.body);
}

fn cache_paths(dir: &Path, env: i64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("env-{env}.json.gz")),
        dir.join(format!("env-{env}.meta.json")),
    )
}

/// What is kept beside a cached document.
pub struct CachedMeta<'a> {
    pub environment_id: i64,
    pub revision: i64,
    pub etag: &'a str,
    pub shares_second: bool,
    /// The SDK fields of its features, as published beside it.
    pub sdk_features: Option<&'a str>,
}

/// Writes a last good document (atomically: a crash leaves the previous one).
pub fn write_cached(dir: &Path, meta: &CachedMeta<'_>, body: &[u8]) {
    let (body_path, meta_path) = cache_paths(dir, meta.environment_id);
    let meta_json = serde_json::json!({
        "environment_id": meta.environment_id,
        "revision": meta.revision,
        "etag": meta.etag,
        "shares_second": meta.shares_second,
        "sdk_features": meta.sdk_features,
    });
    let result = std::fs::create_dir_all(dir)
        .and_then(|_| write_atomic(&body_path, body))
        .and_then(|_| write_atomic(&meta_path, meta_json.to_string().as_bytes()));
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write the last-good document cache");
    }
}

/// Forgets the last good copy of an environment that no longer exists.
pub fn remove_cached(dir: &Path, env: i64) {
    let (body, meta) = cache_paths(dir, env);
    let _ = std::fs::remove_file(&meta);
    let _ = std::fs::remove_file(&body);
    // The previous copies `write_atomic` keeps.
    let _ = std::fs::remove_file(meta.with_extension("tmp"));
    let _ = std::fs::remove_file(body.with_extension("tmp"));
}

/// Replaces `path` with `bytes` in one step: written beside it as `<name>.tmp`, then swapped
/// in. Where the two names can be exchanged (Linux `renameat2(RENAME_EXCHANGE)`), the previous
/// copy stays as the `.tmp` file and is overwritten by the next write, so a rewrite allocates
/// no inode and deletes none: on ext4, a burst that created and deleted a file per publish
/// spent most of the edge's CPU in inode allocation skipping recently deleted inodes.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    overwrite(&tmp, bytes)?;
    if exchange(&tmp, path).is_ok() {
        return Ok(());
    }
    // The first write (nothing to exchange with), or a platform or filesystem without it.
    std::fs::rename(tmp, path)
}

/// Writes `bytes` over the file at `path` in place (created if missing), then cuts it to their
/// length. Not truncating first matters on file systems mounted with `discard`: freeing every
/// block of the old copy and allocating new ones made each rewrite wait for the device.
fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.write_all(bytes)?;
    f.set_len(bytes.len() as u64)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; AT_FDCWD makes
    // relative paths resolve as `std::fs` does. The call touches no memory of ours.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_swap_in_place_and_removal_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("flagstone-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("env-1.meta.json");
        for n in 0..3 {
            write_atomic(&path, format!("copy {n}").as_bytes()).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("copy {n}"));
        }
        // On Linux the previous copy stays beside it, to be overwritten next time.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            use std::os::unix::fs::MetadataExt;
            let tmp = path.with_extension("tmp");
            assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "copy 1");
            let inodes = |p: &Path| std::fs::metadata(p).unwrap().ino();
            let before = [inodes(&path), inodes(&tmp)];
            write_atomic(&path, b"copy 3").unwrap();
            // The same two files, swapped: no file created, none deleted.
            assert_eq!([inodes(&tmp), inodes(&path)], before);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "copy 3");
        }
        std::fs::write(dir.join("env-1.json.gz"), b"x").unwrap();
        std::fs::write(dir.join("env-1.json.tmp"), b"x").unwrap();
        remove_cached(&dir, 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn meta(env: i64, revision: i64) -> CachedMeta<'static> {
        CachedMeta {
            environment_id: env,
            revision,
            etag: "e",
            shares_second: false,
            sdk_features: None,
        }
    }

    fn cached_revision(dir: &Path, env: i64) -> Option<i64> {
        let text = std::fs::read(dir.join(format!("env-{env}.meta.json"))).ok()?;
        serde_json::from_slice::<serde_json::Value>(&text).ok()?["revision"].as_i64()
    }

    #[tokio::test]
    async fn queued_writes_reach_the_disk_newest_revision_last() {
        let dir = tempfile::tempdir().unwrap();
        let w = CacheWriter::start(dir.path().join("cache"));
        for revision in 1..=50 {
            w.write(&meta(1, revision), Bytes::from(format!("body {revision}")));
            w.write(&meta(2, revision), Bytes::from_static(b"two"));
        }
        w.written().await;
        assert_eq!(w.waiting(), 0);
        let cache = dir.path().join("cache");
        assert_eq!(cached_revision(&cache, 1), Some(50));
        assert_eq!(cached_revision(&cache, 2), Some(50));
        assert_eq!(
            std::fs::read(cache.join("env-1.json.gz")).unwrap(),
            b"body 50"
        );
    }

    #[tokio::test]
    async fn a_removal_wins_over_a_waiting_write_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = CacheWriter::start(dir.path().to_path_buf());
        w.write(&meta(1, 1), Bytes::from_static(b"one"));
        w.written().await;
        assert_eq!(cached_revision(dir.path(), 1), Some(1));
        // Whether the thread has taken the second write yet or not, nothing survives the removal.
        w.write(&meta(1, 2), Bytes::from_static(b"two"));
        w.remove(1);
        w.written().await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Written again afterwards: back on disk.
        w.write(&meta(1, 3), Bytes::from_static(b"three"));
        w.written().await;
        assert_eq!(cached_revision(dir.path(), 1), Some(3));
    }

    #[test]
    fn stopping_writes_what_is_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let w = CacheWriter::start(dir.path().to_path_buf());
        for env in 0..200 {
            w.write(&meta(env, 7), Bytes::from_static(b"x"));
        }
        drop(w);
        for env in 0..200 {
            assert_eq!(
                cached_revision(dir.path(), env),
                Some(7),
                "environment {env}"
            );
        }
    }

    #[test]
    fn a_rewrite_shorter_than_the_previous_copy_leaves_no_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env-1.json.gz");
        write_atomic(&path, b"a long first copy").unwrap();
        write_atomic(&path, b"a second, longer copy than the first").unwrap();
        // The next write goes over the first copy's file, which is longer than this one.
        write_atomic(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
    }
}
