//! The health decision without a database: each threshold, the culprits named, transitions and
//! readiness.

use super::*;

fn parked_env(id: i64, staleness_seconds: i64) -> Lagging {
    Lagging {
        environment_id: id,
        name: Some(format!("env {id}")),
        task_id: Some(id),
        job_state: Some(JobState::Parked),
        park_reason: Some(ParkReason::InvalidData),
        revision_lag: 1,
        staleness_seconds,
        attempts: Some(5),
        last_error: Some("corrupt".into()),
    }
}

fn failing(r: &HealthReport) -> Vec<CheckName> {
    r.reasons().map(|c| c.name).collect()
}

#[test]
fn an_idle_queue_is_ok() {
    let r = decide(&HealthInputs::default(), &Thresholds::default());
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.checks.len(), 4);
    assert!(failing(&r).is_empty());
}

#[test]
fn each_threshold_degrades_only_when_passed() {
    let t = Thresholds::default();
    let at = HealthInputs {
        pending: 900,
        running: 100,
        oldest_pending_secs: Some(60),
        ..Default::default()
    };
    assert_eq!(decide(&at, &t).status, Status::Ok, "at the threshold is ok");
    let past = HealthInputs {
        pending: 1001,
        oldest_pending_secs: Some(61),
        ..Default::default()
    };
    let r = decide(&past, &t);
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        failing(&r),
        vec![CheckName::QueueDepth, CheckName::OldestPending]
    );
}

#[test]
fn a_parked_task_degrades_and_is_named() {
    let inputs = HealthInputs {
        parked: 1,
        lagging: vec![parked_env(7, 10)],
        ..Default::default()
    };
    let r = decide(&inputs, &Thresholds::default());
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(failing(&r), vec![CheckName::ParkedTasks]);
    let parked = r.reasons().next().unwrap();
    assert_eq!(parked.environments.len(), 1);
    assert_eq!(parked.environments[0].environment_id, 7);
    assert_eq!(parked.environments[0].task_id, Some(7));
    // Tolerating one parked job makes the same queue ok.
    let lenient = Thresholds {
        max_parked: 1,
        ..Thresholds::default()
    };
    assert_eq!(decide(&inputs, &lenient).status, Status::Ok);
}

#[test]
fn staleness_names_only_the_environments_past_it() {
    let mut waiting = parked_env(3, 301);
    waiting.job_state = Some(JobState::Pending);
    let mut fresh = parked_env(4, 5);
    fresh.job_state = Some(JobState::Pending);
    let inputs = HealthInputs {
        pending: 2,
        lagging: vec![waiting, fresh],
        ..Default::default()
    };
    let r = decide(&inputs, &Thresholds::default());
    assert_eq!(failing(&r), vec![CheckName::EnvironmentStaleness]);
    let c = r.reasons().next().unwrap();
    assert_eq!(c.value, 301);
    let ids: Vec<i64> = c.environments.iter().map(|l| l.environment_id).collect();
    assert_eq!(ids, vec![3]);
}

#[test]
fn transitions_fire_on_change_only() {
    let ok = decide(&HealthInputs::default(), &Thresholds::default());
    let bad = decide(
        &HealthInputs {
            parked: 1,
            lagging: vec![parked_env(1, 0)],
            ..Default::default()
        },
        &Thresholds::default(),
    );
    assert_eq!(transition(None, &ok), None, "starting ok is not news");
    let down = transition(Some(Status::Ok), &bad).expect("ok -> degraded");
    assert_eq!((down.from, down.to), (Status::Ok, Status::Degraded));
    assert_eq!(transition(Some(Status::Degraded), &bad), None);
    let up = transition(Some(Status::Degraded), &ok).expect("degraded -> ok");
    assert_eq!((up.from, up.to), (Status::Degraded, Status::Ok));
    assert!(
        transition(None, &bad).is_some(),
        "starting degraded is news"
    );
}

#[test]
fn readiness_rules() {
    let docs = |loaded, environments| {
        Some(DocumentsLoaded {
            loaded,
            environments,
            serving_from_cache: false,
            staleness_seconds: None,
            loading_cache: !loaded,
            cache_loaded: environments,
        })
    };
    let r = |store_reachable, documents| Readiness {
        store_reachable,
        documents,
    };
    use ReadinessRule::*;
    assert!(r(true, None).ready(StoreRequired));
    assert!(!r(false, None).ready(StoreRequired));
    assert!(r(true, docs(true, 0)).ready(StoreRequired));
    assert!(!r(true, docs(false, 0)).ready(StoreRequired));
    assert!(!r(false, docs(true, 3)).ready(StoreRequired));
    // An edge serving cached documents stays ready while the store is down...
    assert!(r(false, docs(true, 3)).ready(DocumentsSuffice));
    // ...but not with nothing to serve.
    assert!(!r(false, docs(true, 0)).ready(DocumentsSuffice));
}
