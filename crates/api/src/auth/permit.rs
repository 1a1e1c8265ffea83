//! What each admin handler needs, checked before it runs: [`Permit<R>`] is an extractor that
//! resolves the object a route is about from the route's first path parameter (an environment's
//! client key → environment, project and organisation ids; a project id → project and
//! organisation; an organisation id), then asks [`Grants::check`] for the [`Need`] its rule `R`
//! names. A refusal is `403` naming the missing permission; an object that does not exist is
//! `404`. Because it is a parts extractor it runs before the body is read, so a refused request
//! is refused whatever it carries and writes nothing.
//!
//! Routes whose object is in the body or the query (creating a project or an environment,
//! importing, re-ordering overrides, filtered lists) check with [`Caller::require`] and
//! [`Grants::visible`] themselves, with the resolution helpers here. The rule of each endpoint
//! is listed in `docs/permissions.md`.
//!
//! [`Grants::check`]: flagstone_access::Grants::check
//! [`Grants::visible`]: flagstone_access::Grants::visible

use std::future::Future;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;
use flagstone_access::{EnvironmentRef, Need, ProjectRef};
use flagstone_store::scopes;

use super::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// An object a permission is checked on, found from a path parameter.
pub trait Scope: Copy + Send + Sync + 'static {
    /// What the path parameter names, for a 400 when it is malformed.
    const PARAMETER: &'static str;
    /// The collection the route must start with: the first parameter of
    /// `/api/v1/{COLLECTION}/{…}/…` names the object.
    const COLLECTION: &'static str;
    /// Finds the object (404 when there is none).
    fn resolve(s: &AppState, raw: &str) -> impl Future<Output = ApiResult<Self>> + Send;
}

/// An organisation, by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrganisationId(pub i64);

fn id(parameter: &str, raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| {
        ApiError::BadRequest(format!("{parameter} must be an integer id, not {raw:?}"))
    })
}

impl Scope for OrganisationId {
    const PARAMETER: &'static str = "organisation id";
    const COLLECTION: &'static str = "organisations";
    async fn resolve(s: &AppState, raw: &str) -> ApiResult<Self> {
        let id = id(Self::PARAMETER, raw)?;
        let mut tx = s.store.read().await?;
        Ok(OrganisationId(scopes::organisation(&mut tx, id).await?))
    }
}

impl Scope for ProjectRef {
    const PARAMETER: &'static str = "project id";
    const COLLECTION: &'static str = "projects";
    async fn resolve(s: &AppState, raw: &str) -> ApiResult<Self> {
        let id = id(Self::PARAMETER, raw)?;
        let mut tx = s.store.read().await?;
        Ok(scopes::project(&mut tx, id).await?)
    }
}

impl Scope for EnvironmentRef {
    const PARAMETER: &'static str = "environment key";
    const COLLECTION: &'static str = "environments";
    async fn resolve(s: &AppState, raw: &str) -> ApiResult<Self> {
        let mut tx = s.store.read().await?;
        Ok(scopes::environment_by_key(&mut tx, raw).await?)
    }
}

/// What an endpoint needs, as a type: its scope and the [`Need`] in that scope.
pub trait Rule: Send + Sync + 'static {
    type Scope: Scope;
    fn need(scope: Self::Scope) -> Need;
}

/// Proof that the caller may do what `R` describes on the object the path names.
pub struct Permit<R: Rule> {
    /// The object, resolved to its chain of ids.
    pub at: R::Scope,
    pub caller: Caller,
    _rule: PhantomData<R>,
}

impl<R: Rule> FromRequestParts<AppState> for Permit<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> ApiResult<Self> {
        let caller = Caller::from_request_parts(parts, s).await?;
        let params = RawPathParams::from_request_parts(parts, s)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let (Some((_, raw)), true) = (
            params.iter().next(),
            template.is_some_and(names::<R::Scope>),
        ) else {
            // A rule on a route whose first parameter is not its scope's object (say a project
            // rule under `/features/{id}/`) would check the wrong object: a programming error,
            // refused rather than guessed.
            tracing::error!(route = ?template, scope = R::Scope::COLLECTION,
                "Permit on a route that does not start with its scope's object");
            return Err(ApiError::Forbidden(flagstone_access::Refusal {
                need: Need::Superuser,
                reason: flagstone_access::Reason::SuperuserOnly,
            }));
        };
        let at = R::Scope::resolve(s, raw).await?;
        caller.require(R::need(at))?;
        Ok(Permit {
            at,
            caller,
            _rule: PhantomData,
        })
    }
}

/// Whether a route template (`/api/v1/projects/{project}/features`) starts with the object of
/// scope `S`: its collection, then a parameter.
fn names<S: Scope>(template: &str) -> bool {
    let mut segments = template
        .strip_prefix("/api/v1/")
        .unwrap_or_default()
        .split('/');
    segments.next() == Some(S::COLLECTION) && segments.next().is_some_and(|p| p.starts_with('{'))
}

/// The rules of the admin API's endpoints, by name. Environment rules resolve the client key in
/// the path; project rules the project id; organisation rules the organisation id.
pub mod rules {
    use flagstone_access::{
        EnvironmentPermission as E, EnvironmentRef, Need, ProjectPermission as P, ProjectRef,
    };

    use super::{OrganisationId, Rule};

    macro_rules! rule {
        ($(#[$m:meta])* $name:ident, $scope:ty, |$x:ident| $need:expr) => {
            $(#[$m])*
            pub struct $name;
            impl Rule for $name {
                type Scope = $scope;
                fn need($x: $scope) -> Need {
                    $need
                }
            }
        };
    }

    rule!(/// Any member of the organisation.
        Member, OrganisationId, |o| Need::Member(o.0));
    rule!(/// The organisation's `ADMIN`s.
        OrganisationAdmin, OrganisationId, |o| Need::OrganisationAdmin(o.0));

    rule!(ViewProject, ProjectRef, |p| Need::Project(
        p,
        P::ViewProject
    ));
    rule!(CreateFeature, ProjectRef, |p| Need::Project(
        p,
        P::CreateFeature
    ));
    rule!(DeleteFeature, ProjectRef, |p| Need::Project(
        p,
        P::DeleteFeature
    ));
    rule!(ManageSegments, ProjectRef, |p| Need::Project(
        p,
        P::ManageSegments
    ));
    rule!(ManageTags, ProjectRef, |p| Need::Project(p, P::ManageTags));
    rule!(ViewAuditLog, ProjectRef, |p| Need::Project(
        p,
        P::ViewAuditLog
    ));
    rule!(/// Project admins (and organisation admins).
        ProjectAdmin, ProjectRef, |p| Need::ProjectAdmin(p));

    rule!(ViewEnvironment, EnvironmentRef, |e| Need::Environment(
        e,
        E::ViewEnvironment
    ));
    rule!(UpdateFeatureState, EnvironmentRef, |e| Need::Environment(
        e,
        E::UpdateFeatureState
    ));
    rule!(ManageSegmentOverrides, EnvironmentRef, |e| {
        Need::Environment(e, E::ManageSegmentOverrides)
    });
    rule!(ViewIdentities, EnvironmentRef, |e| Need::Environment(
        e,
        E::ViewIdentities
    ));
    rule!(ManageIdentities, EnvironmentRef, |e| Need::Environment(
        e,
        E::ManageIdentities
    ));
    rule!(/// Environment admins (and admins of its project and organisation).
        EnvironmentAdmin, EnvironmentRef, |e| Need::EnvironmentAdmin(e));
}

/// Resolves a project named in a body or query (404 when there is none).
pub async fn project(s: &AppState, id: i64) -> ApiResult<ProjectRef> {
    let mut tx = s.store.read().await?;
    Ok(scopes::project(&mut tx, id).await?)
}

/// Resolves an environment named by id in a body or query (404 when there is none).
pub async fn environment(s: &AppState, id: i64) -> ApiResult<EnvironmentRef> {
    let mut tx = s.store.read().await?;
    Ok(scopes::environment(&mut tx, id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_applies_only_where_the_route_starts_with_its_object() {
        assert!(names::<ProjectRef>(
            "/api/v1/projects/{project}/features/{feature}"
        ));
        assert!(names::<ProjectRef>("/api/v1/projects/{id}"));
        assert!(!names::<ProjectRef>("/api/v1/projects"));
        assert!(!names::<ProjectRef>("/api/v1/features/{id}/projects/{p}"));
        assert!(!names::<ProjectRef>("/api/v1/environments/{api_key}"));
        assert!(names::<EnvironmentRef>(
            "/api/v1/environments/{api_key}/identities/{id}"
        ));
        assert!(names::<OrganisationId>("/api/v1/organisations/{id}"));
    }
}
