//! Migration 0063 on a store that already holds features with tags as names (the shape before
//! tags were objects), on SQLite and, with `FLAGSTONE_TEST_DATABASE_URL`, on PostgreSQL: every
//! migration but 0063 is applied first (as on an installation that ran later migrations
//! already), rows are written the old way, then the store opens and migrates. Each distinct
//! name of a project becomes one tag of that project, each feature carries exactly the tags it
//! named, and projects do not share tags.

use std::str::FromStr;

use flagstone_store::testing::TEST_DATABASE_URL_VAR;
use flagstone_store::{features, tags, ConnectOptions, PageRequest, Store};
use sqlx::migrate::Migrator;

/// Every migration of `migrator` except 0063.
fn without_tags(mut m: Migrator) -> Migrator {
    m.migrations = m
        .migrations
        .iter()
        .filter(|x| x.version != 63)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    m
}

/// Two projects; features named with tags the way `features.tags` stored them.
const OLD_ROWS: &[&str] = &[
    "INSERT INTO organisations (id, name, created_at) VALUES (1, 'Acme', 1)",
    "INSERT INTO projects (id, organisation_id, name, created_at) VALUES (1, 1, 'Web', 1)",
    "INSERT INTO projects (id, organisation_id, name, created_at) VALUES (2, 1, 'Mobile', 1)",
    "INSERT INTO features (id, project_id, name, type, tags, created_at) \
     VALUES (1, 1, 'a', 'STANDARD', '[\"checkout\",\"ui\"]', 10)",
    "INSERT INTO features (id, project_id, name, type, tags, created_at) \
     VALUES (2, 1, 'b', 'STANDARD', '[\"ui\",\"say \\\"hi\\\"\"]', 20)",
    "INSERT INTO features (id, project_id, name, type, tags, created_at) \
     VALUES (3, 1, 'c', 'STANDARD', '[]', 30)",
    "INSERT INTO features (id, project_id, name, type, tags, created_at) \
     VALUES (4, 2, 'a', 'STANDARD', '[\"ui\"]', 40)",
];

async fn check(store: &Store) {
    let mut tx = store.read().await.unwrap();
    let all = PageRequest::new(1, 100);
    let web = tags::list(&mut tx, 1, all).await.unwrap().results;
    let labels: Vec<&str> = web.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(labels, ["checkout", "ui", "say \"hi\""]);
    for t in &web {
        assert_eq!(t.project, 1);
        assert!(uuid::Uuid::parse_str(&t.uuid).is_ok(), "{}", t.uuid);
        assert_eq!(t.color, "#3d4db6");
    }
    let id = |label: &str| web.iter().find(|t| t.label == label).unwrap().id;
    let tags_of = |f: features::Feature| f.tags;
    assert_eq!(
        tags_of(features::get(&mut tx, 1, 1).await.unwrap()),
        [id("checkout"), id("ui")]
    );
    assert_eq!(
        tags_of(features::get(&mut tx, 1, 2).await.unwrap()),
        [id("ui"), id("say \"hi\"")]
    );
    assert!(tags_of(features::get(&mut tx, 1, 3).await.unwrap()).is_empty());
    let mobile = tags::list(&mut tx, 2, all).await.unwrap().results;
    assert_eq!(mobile.len(), 1);
    assert_eq!(mobile[0].label, "ui");
    assert_ne!(mobile[0].id, id("ui"));
    assert_eq!(
        tags_of(features::get(&mut tx, 2, 4).await.unwrap()),
        [mobile[0].id]
    );
}

#[tokio::test]
async fn tag_names_become_tag_objects() {
    match std::env::var(TEST_DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => postgres(&url).await,
        _ => sqlite().await,
    }
}

async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    without_tags(sqlx::migrate!("./migrations/sqlite"))
        .run(&pool)
        .await
        .unwrap();
    for q in OLD_ROWS {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = Store::open(&ConnectOptions::new(url)).await.unwrap();
    check(&store).await;
}

async fn postgres(url: &str) {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let base = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
    let admin = sqlx::PgPool::connect_with(base.clone()).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(base.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    without_tags(sqlx::migrate!("./migrations/postgres"))
        .run(&pool)
        .await
        .unwrap();
    for q in OLD_ROWS {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let mut opts = ConnectOptions::new(url.to_string());
    opts.pg_schema = Some(schema);
    let store = Store::open(&opts).await.unwrap();
    check(&store).await;
}
