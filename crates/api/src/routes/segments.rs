//! Admin routes for segments.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r
}
