//! The people side of the admin API (see `docs/people.md`): an organisation's members and
//! roles ([`members`]), invitations and joining ([`invites`]), groups ([`groups`]), permission
//! grants and catalogues ([`grants`]), and organisation API keys ([`keys`]). Every handler here
//! checks its own permission (organisation `ADMIN` for members, invites, groups and keys;
//! project or environment admin for grants) before it reads or writes anything.

mod grants;
mod groups;
pub(crate) mod invites;
mod keys;
mod members;

use flagstone_access::Need;
use flagstone_store::scopes;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = members::routes(r);
    let r = invites::routes(r);
    let r = groups::routes(r);
    let r = grants::routes(r);
    keys::routes(r)
}

/// Refuses unless the caller is an `ADMIN` of the organisation; then 404 if it does not exist
/// (only a superuser can get that far for a missing organisation).
pub(crate) async fn require_org_admin(s: &AppState, caller: &Caller, org: i64) -> ApiResult<()> {
    caller.require(Need::OrganisationAdmin(org))?;
    let mut tx = s.store.read().await?;
    scopes::organisation(&mut tx, org).await?;
    Ok(())
}
