//! Every admin route, one module per resource. Each module's `routes` adds its handlers (with
//! their OpenAPI annotations) to the router.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

mod audit;
mod environments;
mod features;
mod identities;
mod organisations;
mod projects;
mod segments;
mod tasks;
mod transfer;

pub(crate) fn all(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = organisations::routes(r);
    let r = projects::routes(r);
    let r = environments::routes(r);
    let r = features::routes(r);
    let r = segments::routes(r);
    let r = identities::routes(r);
    let r = tasks::routes(r);
    let r = transfer::routes(r);
    audit::routes(r)
}
