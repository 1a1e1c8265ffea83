//! The bucket end to end, against the NATS server of `FLAGSTONE_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`), each test with a bucket of its own: a publisher on the store keeps
//! the bucket at the published documents (puts, purges what is gone, even what it finds there
//! from before), and an edge follower behind a TCP proxy the test controls installs them,
//! drops deleted environments, keeps serving its last good copies while NATS is cut off (and
//! after a restart), and catches up with what happened meanwhile once NATS is back; a
//! publisher cut off from NATS says so (not connected, documents behind, its last put). Waits
//! follow the registry's change feed where there is one; health is polled, with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagstone_edge::registry::RegistryChange;
use flagstone_edge::{PublishFeed, Registry};
use flagstone_nats::{NatsFollower, NatsFollowerConfig, Publisher, PublisherConfig};
use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::document::{build, store_if_newer, BuildOptions};
use flagstone_store::testing::test_store;
use flagstone_store::{Actor, Store};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

fn nats_url() -> String {
    std::env::var("FLAGSTONE_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into())
}

fn nats_addr() -> SocketAddr {
    let url = nats_url();
    let hostport = url.rsplit("://").next().unwrap_or(&url);
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .expect("FLAGSTONE_TEST_NATS_URL host:port")
        .next()
        .expect("an address")
}

fn unique_bucket(test: &str) -> String {
    format!("t-{test}-{}", uuid_like())
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A TCP proxy to NATS that the test switches off (closing every connection through it) and
/// on again, on the same port.
struct Proxy {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut p = Proxy { addr, task: None };
        p.up().await;
        p
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    async fn up(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener = socket.listen(64).unwrap();
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task (aborted by `down`): every connection closes with it.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(nats_addr()).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Builds and publishes an environment's document, as a worker would.
async fn publish(store: &Store, env: i64) -> i64 {
    let doc = build(store, env, &BuildOptions::default()).await.unwrap();
    let mut tx = store.write().await.unwrap();
    store_if_newer(&mut tx, &doc).await.unwrap();
    tx.commit().await.unwrap();
    doc.revision
}

async fn change_and_publish(store: &Store, fx: &Fixture, value: &str) -> i64 {
    fixture::change_feature(store, fx, 0, value).await.unwrap();
    publish(store, fx.environment_id).await
}

/// Waits on the registry's change feed until `pred` holds.
async fn wait_registry(
    registry: &Registry,
    changes: &mut broadcast::Receiver<RegistryChange>,
    what: &str,
    pred: impl Fn(&Registry) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pred(registry) {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("registry feed closed: {e}"),
            Err(_) => panic!(
                "{what}: not within {WAIT:?}; registry holds {:?}",
                registry.revisions()
            ),
        }
    }
}

/// Polls `pred` (health has no change feed), with a deadline.
async fn wait_until(what: &str, pred: impl Fn() -> bool) {
    wait_within(WAIT, what, pred).await
}

async fn wait_within(within: Duration, what: &str, pred: impl Fn() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publisher(store: &Store, bucket: &str) -> Arc<Publisher> {
    let config = PublisherConfig {
        poll_interval: Duration::from_millis(100),
        ..PublisherConfig::new(&nats_url(), bucket)
    };
    Publisher::start(store.clone(), PublishFeed::PollOnly, config)
        .await
        .unwrap()
}

async fn follower(
    url: &str,
    bucket: &str,
    cache: &std::path::Path,
) -> (Arc<Registry>, Arc<NatsFollower>) {
    let registry = Arc::new(Registry::default());
    let config = NatsFollowerConfig {
        cache_dir: Some(cache.to_path_buf()),
        ..NatsFollowerConfig::new(url, bucket)
    };
    let f = NatsFollower::start(registry.clone(), config).await.unwrap();
    // The cache directory is read in the background; the scenarios start once it is.
    registry.initial_load_finished().await;
    (registry, f)
}

async fn delete_bucket(bucket: &str) {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let _ = js.delete_key_value(bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_follows_the_bucket_through_deletions_outages_and_restarts() {
    let t = test_store().await;
    let store = &t.store;
    let shape = fixture::Shape::INCIDENT.times(0);
    let a = fixture::create(store, shape).await.unwrap();
    let b = fixture::create(store, shape).await.unwrap();
    publish(store, a.environment_id).await;
    publish(store, b.environment_id).await;
    let bucket = unique_bucket("follow");

    // A key left in the bucket by an environment the store no longer has: purged at start.
    {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = flagstone_nats::bucket::open(&js, &bucket).await.unwrap();
        kv.put("env.999999999", "stale".into()).await.unwrap();
    }
    let p = publisher(store, &bucket).await;
    let cache = tempfile::tempdir().unwrap();
    let mut proxy = Proxy::start().await;
    let (registry, f) = follower(&proxy.url(), &bucket, cache.path()).await;
    let mut changes = registry.changes();
    let rev_a = |r: &Registry| r.revision_of(a.environment_id);
    wait_registry(&registry, &mut changes, "both environments served", |r| {
        r.revision_of(a.environment_id).is_some() && r.revision_of(b.environment_id).is_some()
    })
    .await;
    assert!(
        registry.get(&a.api_key).await.is_some(),
        "indexed by client key"
    );
    wait_until("the follower is synchronised and current", || {
        f.status().synchronised && !f.health.serving_from_cache()
    })
    .await;
    assert!(p.reachable());
    assert_eq!(registry.len(), 2, "the stale key is not an environment");
    {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = flagstone_nats::bucket::open(&js, &bucket).await.unwrap();
        assert_eq!(
            kv.get("env.999999999").await.unwrap(),
            None,
            "purged by the publisher"
        );
    }

    // A change: the new revision is served.
    let r1 = change_and_publish(store, &a, "one").await;
    wait_registry(&registry, &mut changes, "the new revision", |r| {
        rev_a(r) == Some(r1)
    })
    .await;

    // A deletion: the environment stops being served, and leaves the cache directory.
    {
        let mut ch = store.change(&Actor::system("test")).await.unwrap();
        flagstone_store::environments::delete(&mut ch, &b.api_key)
            .await
            .unwrap();
        ch.commit().await.unwrap();
    }
    wait_registry(
        &registry,
        &mut changes,
        "the deleted environment dropped",
        |r| r.revision_of(b.environment_id).is_none(),
    )
    .await;
    assert!(
        !cache
            .path()
            .join(format!("env-{}.meta.json", b.environment_id))
            .exists(),
        "a deleted environment's last good copy is forgotten"
    );

    // NATS cut off: the edge keeps serving and says it serves last good copies.
    proxy.down().await;
    wait_until("the follower reports NATS unreachable", || {
        !f.connected() && f.health.serving_from_cache() && !f.status().synchronised
    })
    .await;
    assert_eq!(rev_a(&registry), Some(r1), "still served");
    // Changes meanwhile reach the bucket (the publisher is not cut off).
    let r2 = change_and_publish(store, &a, "two").await;
    let c = fixture::create(store, shape).await.unwrap();
    let rev_c = publish(store, c.environment_id).await;
    wait_until("the publisher puts them", || {
        p.behind() == 0 && p.reachable()
    })
    .await;

    // A restarted edge, with NATS still cut off, serves its cache at once.
    let (registry2, f2) = follower(&proxy.url(), &bucket, cache.path()).await;
    assert_eq!(registry2.revision_of(a.environment_id), Some(r1));
    assert_eq!(registry2.revision_of(b.environment_id), None);
    assert!(f2.health.serving_from_cache());

    // NATS back: both catch up with everything that happened meanwhile.
    proxy.up().await;
    wait_registry(&registry, &mut changes, "caught up", |r| {
        rev_a(r) == Some(r2) && r.revision_of(c.environment_id) == Some(rev_c)
    })
    .await;
    let mut changes2 = registry2.changes();
    wait_registry(
        &registry2,
        &mut changes2,
        "the restarted edge caught up",
        |r| {
            r.revision_of(a.environment_id) == Some(r2)
                && r.revision_of(c.environment_id) == Some(rev_c)
        },
    )
    .await;
    wait_until("both current again", || {
        !f.health.serving_from_cache() && !f2.health.serving_from_cache()
    })
    .await;
    assert!(f.health.staleness_seconds().unwrap() < 15.0);
    delete_bucket(&bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_entry_keeps_the_previous_revision_and_the_publisher_repairs_it() {
    let t = test_store().await;
    let store = &t.store;
    let a = fixture::create(store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    let r0 = publish(store, a.environment_id).await;
    let bucket = unique_bucket("bad");
    let cache = tempfile::tempdir().unwrap();
    let (registry, f) = follower(&nats_url(), &bucket, cache.path()).await;
    let mut changes = registry.changes();
    // No publisher yet: synchronised with an empty bucket, but nobody vouches for it.
    wait_until("synchronised", || f.status().synchronised).await;
    assert!(f.health.serving_from_cache(), "no publisher heartbeat yet");

    let p = publisher(store, &bucket).await;
    wait_registry(&registry, &mut changes, "published", |r| {
        r.revision_of(a.environment_id) == Some(r0)
    })
    .await;
    wait_until("a publisher vouches for the bucket", || {
        !f.health.serving_from_cache()
    })
    .await;

    // Someone writes garbage over the key (a newer sequence, no Flagstone headers).
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let kv = flagstone_nats::bucket::open(&js, &bucket).await.unwrap();
    kv.put(format!("env.{}", a.environment_id), "garbage".into())
        .await
        .unwrap();
    wait_until("the entry is rejected", || f.status().entries_rejected == 1).await;
    assert_eq!(
        registry.revision_of(a.environment_id),
        Some(r0),
        "still served"
    );

    // The next revision replaces it (a put looks at the key's latest entry first, whoever
    // wrote it).
    let r1 = change_and_publish(store, &a, "after").await;
    wait_registry(&registry, &mut changes, "the next revision", |r| {
        r.revision_of(a.environment_id) == Some(r1)
    })
    .await;
    assert!(p.reachable());
    delete_bucket(&bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reports_whether_it_is_connected_when_it_last_put_and_what_is_behind() {
    let t = test_store().await;
    let store = &t.store;
    let a = fixture::create(store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    let b = fixture::create(store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    publish(store, a.environment_id).await;
    publish(store, b.environment_id).await;
    let bucket = unique_bucket("status");
    let mut proxy = Proxy::start().await;
    proxy.down().await;

    // NATS unreachable from the start: nothing put, both documents behind.
    let config = PublisherConfig {
        poll_interval: Duration::from_millis(100),
        ..PublisherConfig::new(&proxy.url(), &bucket)
    };
    let p = Publisher::start(store.clone(), PublishFeed::PollOnly, config)
        .await
        .unwrap();
    // Each of the publisher's requests to an unreachable NATS waits for its own timeout.
    wait_within(
        Duration::from_secs(90),
        "both documents counted behind",
        || p.status().documents_behind == 2,
    )
    .await;
    let s = p.status();
    assert!(!s.connected && !s.in_step, "{s:?}");
    assert_eq!((s.last_put_at_ms, s.last_in_step_at_ms), (None, None));

    // NATS back: both put, in step.
    proxy.up().await;
    wait_until("in step", || {
        let s = p.status();
        s.in_step && s.documents_behind == 0 && s.last_in_step_at_ms.is_some()
    })
    .await;
    let s = p.status();
    assert!(s.connected, "{s:?}");
    let put = s.last_put_at_ms.expect("documents were put");
    assert!(s.last_in_step_at_ms.unwrap() >= put, "{s:?}");

    // Cut off again, and a change: that one is behind, the last put stays what it was.
    proxy.down().await;
    change_and_publish(store, &a, "while cut off").await;
    wait_until("the change counted behind", || {
        let s = p.status();
        !s.connected && s.documents_behind == 1
    })
    .await;
    let s = p.status();
    assert_eq!(s.last_put_at_ms, Some(put), "{s:?}");
    assert!(!s.in_step, "{s:?}");
    proxy.up().await;
    wait_until("caught up", || {
        let s = p.status();
        s.in_step && s.documents_behind == 0 && s.last_put_at_ms > Some(put)
    })
    .await;
    delete_bucket(&bucket).await;
}
