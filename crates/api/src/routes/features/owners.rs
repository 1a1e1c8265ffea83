//! Feature owners, as Flagsmith's `FeatureViewSet` actions serve them:
//! `POST /api/v1/projects/{id}/features/{feature}/add-owners/` and `remove-owners/` with
//! `{"user_ids": […]}`, `add-group-owners/` and `remove-group-owners/` with
//! `{"group_ids": […]}`; each answers the feature (with its `owners` and `group_owners`).
//! `CREATE_FEATURE` on the project, as in Flagsmith. A person may own a feature only if they
//! may view its project (Flagsmith's rule), decided here on their grants; a group must be one
//! of the project's organisation (the store's rule).

use axum::extract::State;
use flagstone_access::{Need, ProjectPermission, ProjectRef};
use flagstone_store::accounts::{grants, users};
use flagstone_store::features::owners::{self, OwnerKind, MAX_IDS};
use flagstone_store::features::Feature;
use flagstone_store::{Change, StoreError, Tx};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(add_owners))
        .routes(routes!(remove_owners))
        .routes(routes!(add_group_owners))
        .routes(routes!(remove_group_owners))
}

/// Flagsmith's `UserIdsSerializer`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserIds {
    user_ids: Vec<i64>,
}

/// Flagsmith's `FeatureGroupOwnerInputSerializer`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GroupIds {
    group_ids: Vec<i64>,
}

/// Refuses, naming `user_ids`, any id that is not a user who may view the project (Flagsmith
/// answers both "Some users not found").
pub(crate) async fn check_may_own(tx: &mut Tx, at: ProjectRef, ids: &[i64]) -> ApiResult<()> {
    if ids.len() > MAX_IDS {
        return Err(
            StoreError::invalid("user_ids", format!("at most {MAX_IDS} ids at a time")).into(),
        );
    }
    let not_found = || StoreError::invalid("user_ids", "Some users not found");
    for &id in ids {
        let user = match users::get(tx, id).await {
            Ok(user) => user,
            Err(StoreError::NotFound { .. }) => return Err(not_found().into()),
            Err(e) => return Err(e.into()),
        };
        let held = grants::of_user(tx, user.id, user.is_superuser).await?;
        if !held
            .check(Need::Project(at, ProjectPermission::ViewProject))
            .is_allowed()
        {
            return Err(not_found().into());
        }
    }
    Ok(())
}

/// One change of a feature's owners, committed.
async fn change(
    s: &AppState,
    permit: &Permit<rules::CreateFeature>,
    feature: i64,
    kind: OwnerKind,
    ids: &[i64],
    adding: bool,
) -> ApiResult<Json<Feature>> {
    let mut ch: Change = s.store.change(permit.caller.actor()).await?;
    let project = permit.at.project;
    let out = if adding {
        if kind == OwnerKind::People {
            check_may_own(ch.tx(), permit.at, ids).await?;
        }
        owners::add(&mut ch, project, feature, kind, ids).await?
    } else {
        owners::remove(&mut ch, project, feature, kind, ids).await?
    };
    ch.commit().await?;
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features/{feature}/add-owners",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path)),
    request_body = UserIds, responses((status = 200, body = Feature)))]
async fn add_owners(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path((_project, feature)): Path<(i64, i64)>,
    Json(body): Json<UserIds>,
) -> ApiResult<Json<Feature>> {
    change(
        &s,
        &permit,
        feature,
        OwnerKind::People,
        &body.user_ids,
        true,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features/{feature}/remove-owners",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path)),
    request_body = UserIds, responses((status = 200, body = Feature)))]
async fn remove_owners(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path((_project, feature)): Path<(i64, i64)>,
    Json(body): Json<UserIds>,
) -> ApiResult<Json<Feature>> {
    change(
        &s,
        &permit,
        feature,
        OwnerKind::People,
        &body.user_ids,
        false,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features/{feature}/add-group-owners",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path)),
    request_body = GroupIds, responses((status = 200, body = Feature)))]
async fn add_group_owners(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path((_project, feature)): Path<(i64, i64)>,
    Json(body): Json<GroupIds>,
) -> ApiResult<Json<Feature>> {
    change(
        &s,
        &permit,
        feature,
        OwnerKind::Groups,
        &body.group_ids,
        true,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features/{feature}/remove-group-owners",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path)),
    request_body = GroupIds, responses((status = 200, body = Feature)))]
async fn remove_group_owners(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path((_project, feature)): Path<(i64, i64)>,
    Json(body): Json<GroupIds>,
) -> ApiResult<Json<Feature>> {
    change(
        &s,
        &permit,
        feature,
        OwnerKind::Groups,
        &body.group_ids,
        false,
    )
    .await
}
