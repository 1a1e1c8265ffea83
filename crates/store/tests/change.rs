//! The one-transaction rule: a change always comes with its audit entry, revision bump and
//! publish request — and a change that is dropped leaves none of them.

use flagstone_store::environments::{self, NewEnvironment};
use flagstone_store::organisations::{self, NewOrganisation};
use flagstone_store::projects::LimitLowering;
use flagstone_store::projects::{self, NewProject, ProjectPatch};
use flagstone_store::testing::test_store;
use flagstone_store::{audit, sql, Actor, PageRequest, Store};

async fn setup(store: &Store) -> (i64, i64, String) {
    let actor = Actor::system("test");
    let mut ch = store.change(&actor).await.unwrap();
    let org = organisations::create(
        &mut ch,
        &serde_json::from_value::<NewOrganisation>(serde_json::json!({"name": "Org"})).unwrap(),
    )
    .await
    .unwrap();
    let project = projects::create(
        &mut ch,
        &serde_json::from_value::<NewProject>(
            serde_json::json!({"name": "P", "organisation": org.id}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let env = environments::create(
        &mut ch,
        &serde_json::from_value::<NewEnvironment>(
            serde_json::json!({"name": "prod", "project": project.id}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    (project.id, env.id, env.api_key)
}

async fn publish_job(store: &Store, env: i64) -> Option<(i64, String)> {
    let mut tx = store.read().await.unwrap();
    sql!(&mut tx, |c| sqlx::query_as(
        "SELECT wanted_revision, state FROM publish_jobs WHERE environment_id = $1"
    )
    .bind(env)
    .fetch_optional(c)
    .await
    .unwrap())
}

#[tokio::test]
async fn a_change_comes_with_audit_revision_and_publish_request() {
    let t = test_store().await;
    let (project, env, key) = setup(&t.store).await;
    let mut tx = t.store.read().await.unwrap();
    let before = environments::get_by_key(&mut tx, &key).await.unwrap();
    let audit_before = audit::list(&mut tx, Some(project), PageRequest::default())
        .await
        .unwrap()
        .count;
    drop(tx);

    let mut ch = t.store.change(&Actor::system("test")).await.unwrap();
    let patch: ProjectPatch =
        serde_json::from_value(serde_json::json!({"hide_disabled_flags": true})).unwrap();
    projects::update(&mut ch, project, &patch, LimitLowering::Refuse)
        .await
        .unwrap();
    let committed = ch.commit().await.unwrap();

    let mut tx = t.store.read().await.unwrap();
    let after = environments::get_by_key(&mut tx, &key).await.unwrap();
    assert_eq!(after.revision, before.revision + 1);
    assert_eq!(committed.revisions, vec![(env, after.revision)]);
    let audit_after = audit::list(&mut tx, Some(project), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(audit_after.count, audit_before + 1);
    assert_eq!(audit_after.results[0].action, "updated");
    assert_eq!(
        publish_job(&t.store, env).await,
        Some((after.revision, "pending".into()))
    );
}

#[tokio::test]
async fn a_dropped_change_writes_nothing() {
    let t = test_store().await;
    let (project, env, key) = setup(&t.store).await;
    let mut tx = t.store.read().await.unwrap();
    let before = environments::get_by_key(&mut tx, &key).await.unwrap();
    let audit_before = audit::list(&mut tx, None, PageRequest::default())
        .await
        .unwrap()
        .count;
    drop(tx);

    let mut ch = t.store.change(&Actor::system("test")).await.unwrap();
    let patch: ProjectPatch =
        serde_json::from_value(serde_json::json!({"name": "renamed"})).unwrap();
    projects::update(&mut ch, project, &patch, LimitLowering::Refuse)
        .await
        .unwrap();
    drop(ch); // the process "dies" before commit

    let mut tx = t.store.read().await.unwrap();
    let p = projects::get(&mut tx, project).await.unwrap();
    assert_eq!(p.name, "P");
    assert_eq!(
        environments::get_by_key(&mut tx, &key)
            .await
            .unwrap()
            .revision,
        before.revision
    );
    assert_eq!(
        audit::list(&mut tx, None, PageRequest::default())
            .await
            .unwrap()
            .count,
        audit_before
    );
    let job = publish_job(&t.store, env).await.unwrap();
    assert_eq!(job.0, before.revision);
}

#[tokio::test]
async fn limits_patch_is_validated_and_merged() {
    let t = test_store().await;
    let (project, _, _) = setup(&t.store).await;
    let mut ch = t.store.change(&Actor::system("test")).await.unwrap();
    let bad: ProjectPatch =
        serde_json::from_value(serde_json::json!({"limits": {"max_bogus": 1}})).unwrap();
    let err = projects::update(&mut ch, project, &bad, LimitLowering::Refuse)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limits.max_bogus"), "{err}");
    drop(ch);
    let mut ch = t.store.change(&Actor::system("test")).await.unwrap();
    let ok: ProjectPatch =
        serde_json::from_value(serde_json::json!({"limits": {"max_features": 3}})).unwrap();
    let p = projects::update(&mut ch, project, &ok, LimitLowering::Refuse)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    assert_eq!(p.limits.max_features, 3);
    assert_eq!(
        p.limits.max_segments,
        flagstone_store::Limits::default().max_segments
    );
}
