//! Every admin route, one module per resource. Each module's `routes` adds its handlers (with
//! their OpenAPI annotations) to the router.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

mod audit;
mod auth;
pub(crate) mod change_requests;
mod environments;
mod features;
mod identities;
mod organisations;
pub(crate) mod people;
mod projects;
mod promotion;
mod scheduled;
mod segments;
mod tags;
mod tasks;
mod transfer;
mod uuids;
pub mod webhooks;

/// Routes that need no credential (sign-in and sign-up).
pub(crate) fn public(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    auth::public_routes(r)
}

/// Every authenticated admin route.
pub(crate) fn all(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = auth::routes(r);
    let r = organisations::routes(r);
    let r = projects::routes(r);
    let r = environments::routes(r);
    let r = features::routes(r);
    let r = segments::routes(r);
    let r = tags::routes(r);
    let r = identities::routes(r);
    let r = tasks::routes(r);
    let r = transfer::routes(r);
    let r = people::routes(r);
    let r = webhooks::routes(r);
    let r = uuids::routes(r);
    let r = scheduled::routes(r);
    let r = change_requests::routes(r);
    let r = promotion::routes(r);
    audit::routes(r)
}
