//! What change requests add to permission checks: the change request scope (permissions on
//! `/api/v1/change-requests/{id}/` are checked in the request's environment), and the refusal
//! of direct edits in an environment that requires approvals (`docs/change-management.md`
//! lists the endpoints that ask it).

use flagstone_access::{EnvironmentPermission as E, EnvironmentRef, Need};
use flagstone_store::change_requests::{self, decide};
use flagstone_store::environments::Environment;
use flagstone_store::{scopes, Tx};

use crate::auth::permit::{Rule, Scope};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// A change request, found from the id in `/api/v1/change-requests/{id}/`, with its environment.
#[derive(Clone, Copy, Debug)]
pub struct ChangeRequestAt {
    pub id: i64,
    pub environment: EnvironmentRef,
}

impl Scope for ChangeRequestAt {
    const PARAMETER: &'static str = "change request id";
    const COLLECTION: &'static str = "change-requests";
    async fn resolve(s: &AppState, raw: &str) -> ApiResult<Self> {
        let id = raw.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "{} must be an integer id, not {raw:?}",
                Self::PARAMETER
            ))
        })?;
        let mut tx = s.store.read().await?;
        let env = change_requests::environment_of(&mut tx, id).await?;
        Ok(ChangeRequestAt {
            id,
            environment: scopes::environment(&mut tx, env).await?,
        })
    }
}

/// Reading a change request: `VIEW_ENVIRONMENT` in its environment.
pub struct ViewChangeRequest;
impl Rule for ViewChangeRequest {
    type Scope = ChangeRequestAt;
    fn need(at: ChangeRequestAt) -> Need {
        Need::Environment(at.environment, E::ViewEnvironment)
    }
}

/// Approving one: `APPROVE_CHANGE_REQUEST` in its environment.
pub struct ApproveChangeRequest;
impl Rule for ApproveChangeRequest {
    type Scope = ChangeRequestAt;
    fn need(at: ChangeRequestAt) -> Need {
        Need::Environment(at.environment, E::ApproveChangeRequest)
    }
}

/// Opening one: `CREATE_CHANGE_REQUEST` in the environment of the path.
pub struct CreateChangeRequest;
impl Rule for CreateChangeRequest {
    type Scope = EnvironmentRef;
    fn need(at: EnvironmentRef) -> Need {
        Need::Environment(at, E::CreateChangeRequest)
    }
}

/// Refuses a direct edit of `env`'s feature states or segment overrides by a caller who is not
/// its admin while it requires approvals: `403` with `"error": "change_request_required"`.
pub fn direct_edit(caller: &Caller, at: EnvironmentRef, env: &Environment) -> ApiResult<()> {
    let admin = caller.require(Need::EnvironmentAdmin(at)).is_ok();
    match decide::direct_edit(env.minimum_change_request_approvals, admin).refusal() {
        None => Ok(()),
        Some(detail) => Err(ApiError::Refused {
            error: "change_request_required",
            detail,
        }),
    }
}

/// [`direct_edit`] for an environment known by its scope (re-ordering overrides names them in
/// the body).
pub async fn direct_edit_in(tx: &mut Tx, caller: &Caller, at: EnvironmentRef) -> ApiResult<()> {
    let env = flagstone_store::environments::get(tx, at.environment).await?;
    direct_edit(caller, at, &env)
}
