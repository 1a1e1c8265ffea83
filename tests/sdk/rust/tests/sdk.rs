//! The unchanged Rust `flagsmith` SDK 3.1.2 against a real `flagstone serve`: remote
//! evaluation (client key) and local evaluation from the environment document (server key).
//!
//! The server is started and seeded by the shared helper `tests/sdk/flagstone_server.py serve`
//! (it runs the binary named by FLAGSTONE_BIN, default target/release/flagstone), which prints
//! the fixture as one JSON line and stops the server when this process exits (its stdin
//! closes). Every test shares that one server and uses its own identifiers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use flagsmith::flagsmith::models::{Flag, Flags, SDKTrait};
use flagsmith::{Flagsmith, FlagsmithOptions};
use flagsmith_flag_engine::types::{FlagsmithValue, FlagsmithValueType};
use serde_json::{json, Value};

const BANNER: &str = "banner";
const CHECKOUT: &str = "checkout_v2";
const MAX_ITEMS: &str = "max_items";
const COLOR: &str = "color";
const PREMIUM: &str = "premium_feature";
const LIVE: &str = "live_toggle";
const STABLE: [&str; 5] = [BANNER, CHECKOUT, MAX_ITEMS, COLOR, PREMIUM];

struct Server {
    fixture: Value,
    // Held open for the life of the process: the helper stops the server when it closes.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn server() -> &'static Value {
    static SERVER: OnceLock<Server> = OnceLock::new();
    &SERVER
        .get_or_init(|| {
            let helper = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../flagstone_server.py");
            let mut child = Command::new("python3")
                .arg(&helper)
                .arg("serve")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the server helper (python3 flagstone_server.py serve)");
            let stdin = child.stdin.take().unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .expect("read the fixture");
            let fixture: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("server helper printed {line:?}: {e}"));
            assert!(fixture.get("error").is_none(), "server helper: {fixture}");
            Server {
                fixture,
                _stdin: Mutex::new(stdin),
                _child: Mutex::new(child),
            }
        })
        .fixture
}

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

fn options(local: bool) -> FlagsmithOptions {
    FlagsmithOptions {
        api_url: s(&server()["api_url"]),
        request_timeout_seconds: 5,
        enable_local_evaluation: local,
        environment_refresh_interval_mills: 3_600_000,
        ..Default::default()
    }
}

fn remote() -> Flagsmith {
    Flagsmith::new(s(&server()["client_key"]), options(false))
}

fn local() -> Flagsmith {
    Flagsmith::new(s(&server()["server_key"]), options(true))
}

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{nanos:x}-{n}")
}

fn trait_(key: &str, value: &str) -> SDKTrait {
    SDKTrait::new(
        key.to_string(),
        FlagsmithValue {
            value_type: FlagsmithValueType::String,
            value: value.to_string(),
        },
    )
}

fn flag(flags: &Flags, name: &str) -> Flag {
    flags
        .get_flag(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// name -> (enabled, value as a string, value type) for the features compared across clients.
fn snapshot(flags: &Flags) -> BTreeMap<&'static str, (bool, String, String)> {
    STABLE
        .iter()
        .map(|name| {
            let f = flag(flags, name);
            (
                *name,
                (
                    f.enabled,
                    f.value.value.clone(),
                    format!("{:?}", f.value.value_type),
                ),
            )
        })
        .collect()
}

/// Tests that change LIVE and wait for their value hold this, so they never race each other.
fn live_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_state(feature: &str, value: Value, enabled: bool) {
    let fx = server();
    let url = format!(
        "{}environments/{}/featurestates/{}/",
        s(&fx["api_url"]),
        s(&fx["client_key"]),
        fx["features"][feature]["state_id"]
    );
    let r = reqwest::blocking::Client::new()
        .patch(url)
        .header("Authorization", format!("Api-Key {}", s(&fx["admin_key"])))
        .json(&json!({"feature_state_value": value, "enabled": enabled}))
        .send()
        .expect("PATCH featurestate");
    assert!(r.status().is_success(), "{:?}", r.text());
}

fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mv_identifiers() -> Vec<String> {
    (0..80).map(|i| format!("mv-user-{i}")).collect()
}

#[test]
fn remote_environment_flags() {
    let flags = remote().get_environment_flags().unwrap();
    assert!(flags.is_feature_enabled(BANNER).unwrap());
    assert_eq!(flags.get_feature_value_as_string(BANNER).unwrap(), "hello");
    assert!(!flags.is_feature_enabled(CHECKOUT).unwrap());
    let max = flag(&flags, MAX_ITEMS);
    assert_eq!(max.value.value_type, FlagsmithValueType::Integer);
    assert_eq!(max.value_as_i64(), Some(10));
    assert_eq!(flags.get_feature_value_as_string(COLOR).unwrap(), "grey");
    assert!(!flags.is_feature_enabled(PREMIUM).unwrap());
    assert_eq!(flags.get_feature_value_as_string(PREMIUM).unwrap(), "standard");
    let banner = flag(&flags, BANNER);
    assert_eq!(
        banner.feature_id as i64,
        server()["features"][BANNER]["id"].as_i64().unwrap()
    );
    assert!(!banner.is_default);
    assert!(flags.get_flag("no_such_feature").is_err());
}

#[test]
fn remote_identity_with_traits_matching_the_segment() {
    let client = remote();
    let premium = client
        .get_identity_flags(&unique("premium"), Some(vec![trait_("plan", "premium")]), None)
        .unwrap();
    assert!(premium.is_feature_enabled(PREMIUM).unwrap());
    assert_eq!(premium.get_feature_value_as_string(PREMIUM).unwrap(), "premium");
    let free = client
        .get_identity_flags(&unique("free"), Some(vec![trait_("plan", "free")]), None)
        .unwrap();
    assert!(!free.is_feature_enabled(PREMIUM).unwrap());
    assert_eq!(free.get_feature_value_as_string(PREMIUM).unwrap(), "standard");
    // Transient identity: evaluated with the traits, nothing stored.
    let t = unique("transient");
    let once = client
        .get_identity_flags(&t, Some(vec![trait_("plan", "premium")]), Some(true))
        .unwrap();
    assert_eq!(once.get_feature_value_as_string(PREMIUM).unwrap(), "premium");
    std::thread::sleep(Duration::from_millis(300));
    let later = client.get_identity_flags(&t, None, None).unwrap();
    assert_eq!(later.get_feature_value_as_string(PREMIUM).unwrap(), "standard");
}

#[test]
fn remote_multivariate_split() {
    let client = remote();
    let first: BTreeMap<String, String> = mv_identifiers()
        .into_iter()
        .map(|id| {
            let v = client
                .get_identity_flags(&id, None, None)
                .unwrap()
                .get_feature_value_as_string(COLOR)
                .unwrap();
            (id, v)
        })
        .collect();
    let mut values: Vec<&String> = first.values().collect();
    values.sort();
    values.dedup();
    assert_eq!(values, ["blue", "red"]);
    for (id, v) in first.iter().take(20) {
        let again = client.get_identity_flags(id, None, None).unwrap();
        assert_eq!(&again.get_feature_value_as_string(COLOR).unwrap(), v, "{id}");
    }
}

#[test]
fn remote_identity_override() {
    let vip = s(&server()["vip_identifier"]);
    let flags = remote().get_identity_flags(&vip, None, None).unwrap();
    assert!(flags.is_feature_enabled(BANNER).unwrap());
    assert_eq!(flags.get_feature_value_as_string(BANNER).unwrap(), "vip banner");
    assert_eq!(flag(&flags, MAX_ITEMS).value_as_i64(), Some(10));
}

#[test]
fn remote_admin_change_is_visible_within_a_second() {
    let _live = live_lock();
    let client = remote();
    let value = unique("rust-remote");
    let started = Instant::now();
    set_state(LIVE, json!(value), true);
    let seen = poll(Duration::from_secs(1), || {
        client
            .get_environment_flags()
            .and_then(|f| f.get_feature_value_as_string(LIVE))
            .map(|v| v == value)
            .unwrap_or(false)
    });
    assert!(seen, "/flags/ did not serve {value} within 1 s");
    eprintln!("rust remote propagation: {:?}", started.elapsed());
}

#[test]
fn unknown_key_gives_the_sdk_error_or_the_default_handler() {
    let bad = Flagsmith::new("not-a-real-key".to_string(), options(false));
    let err = bad.get_environment_flags().err().expect("an error");
    assert_eq!(err.kind, flagsmith::error::ErrorKind::FlagsmithAPIError, "{err}");
    let err = bad
        .get_identity_flags("someone", Some(vec![trait_("plan", "premium")]), None)
        .err()
        .expect("an error");
    assert_eq!(err.kind, flagsmith::error::ErrorKind::FlagsmithAPIError, "{err}");

    fn default_flag(name: &str) -> Flag {
        Flag {
            enabled: true,
            value: FlagsmithValue {
                value_type: FlagsmithValueType::String,
                value: format!("default-{name}"),
            },
            is_default: true,
            ..Default::default()
        }
    }
    let with_default = Flagsmith::new(
        "not-a-real-key".to_string(),
        FlagsmithOptions {
            default_flag_handler: Some(default_flag),
            ..options(false)
        },
    );
    let f = with_default
        .get_environment_flags()
        .unwrap()
        .get_flag(BANNER)
        .unwrap();
    assert!(f.is_default);
    assert_eq!(f.value.value, format!("default-{BANNER}"));

    // Local evaluation: no document can be fetched, so the SDK falls back to the API.
    let bad_local = Flagsmith::new("ser.not-a-real-key".to_string(), options(true));
    assert!(bad_local.get_environment_flags().is_err());
}

#[test]
fn local_environment_flags_equal_remote() {
    let l = snapshot(&local().get_environment_flags().unwrap());
    let r = snapshot(&remote().get_environment_flags().unwrap());
    assert_eq!(l, r);
    assert_eq!(l[BANNER].1, "hello");
}

#[test]
fn local_identity_with_traits_equals_remote() {
    let (l, r) = (local(), remote());
    for plan in ["premium", "free", ""] {
        let id = unique("local");
        let traits = || (!plan.is_empty()).then(|| vec![trait_("plan", plan)]);
        let lf = snapshot(&l.get_identity_flags(&id, traits(), None).unwrap());
        let rf = snapshot(&r.get_identity_flags(&id, traits(), None).unwrap());
        assert_eq!(lf, rf, "plan={plan:?}");
        let expected = if plan == "premium" { "premium" } else { "standard" };
        assert_eq!(lf[PREMIUM].1, expected);
    }
    let segments = l
        .get_identity_segments(
            &unique("seg"),
            Some(vec![flagsmith_flag_engine::identities::Trait {
                trait_key: "plan".into(),
                trait_value: FlagsmithValue {
                    value_type: FlagsmithValueType::String,
                    value: "premium".into(),
                },
            }]),
        )
        .unwrap();
    let names: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["premium users"]);
}

#[test]
fn local_multivariate_split_equals_remote() {
    let (l, r) = (local(), remote());
    let mut mismatched = vec![];
    let mut values = std::collections::BTreeSet::new();
    for id in mv_identifiers() {
        let lv = l
            .get_identity_flags(&id, None, None)
            .unwrap()
            .get_feature_value_as_string(COLOR)
            .unwrap();
        let rv = r
            .get_identity_flags(&id, None, None)
            .unwrap()
            .get_feature_value_as_string(COLOR)
            .unwrap();
        if lv != rv {
            mismatched.push((id, lv.clone(), rv));
        }
        values.insert(lv);
    }
    assert_eq!(mismatched, vec![]);
    assert_eq!(values.into_iter().collect::<Vec<_>>(), ["blue", "red"]);
}

#[test]
fn local_identity_override_from_the_document() {
    let vip = s(&server()["vip_identifier"]);
    let flags = local().get_identity_flags(&vip, None, None).unwrap();
    assert_eq!(flags.get_feature_value_as_string(BANNER).unwrap(), "vip banner");
}

#[test]
fn local_client_sees_an_admin_change_on_refresh() {
    let client = Flagsmith::new(
        s(&server()["server_key"]),
        FlagsmithOptions {
            environment_refresh_interval_mills: 200,
            ..options(true)
        },
    );
    client.get_environment_flags().unwrap();
    let _live = live_lock();
    let value = unique("rust-local");
    set_state(LIVE, json!(value), true);
    let seen = poll(Duration::from_secs(5), || {
        client
            .get_environment_flags()
            .and_then(|f| f.get_feature_value_as_string(LIVE))
            .map(|v| v == value)
            .unwrap_or(false)
    });
    assert!(seen, "the local client did not see {value} within 5 s");
}
