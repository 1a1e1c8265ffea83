//! The error answers admin operations give, added to every operation of the OpenAPI document so
//! that it lists each status an endpoint can return (issue 17: "the OpenAPI document tells the
//! truth"). Clients generated from the document, and schemathesis in CI, then expect the 4xx and
//! 5xx they will meet. Each has the [`ERROR_SCHEMA`] body: `{"error": "<kind>", "detail":
//! "<words>", …}` (`field` on invalid input, `limit`/`max` on a limit, `permission` on a refusal).
//!
//! Which statuses an operation gets follows from what it has, as `crate::error::ApiError`
//! answers them: every one can meet an unreachable or full store (503) and a client that failed
//! to authenticate too often (429); with parameters or a body, invalid input (400) and an id
//! naming no object (404); with a body, one too large (413); behind authentication, 401 and 403. Statuses an operation documents itself are kept as it says them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// The name of the error body's schema in `components.schemas`.
pub(crate) const ERROR_SCHEMA: &str = "Error";

/// Adds the error answers to every operation of `openapi`; `authenticated` for the document of
/// the routes behind authentication.
pub(crate) fn document(openapi: &mut OpenApi, authenticated: bool) {
    let components = openapi.components.get_or_insert_with(Default::default);
    let string = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
    components
        .schemas
        .entry(ERROR_SCHEMA.to_string())
        .or_insert_with(|| {
            ObjectBuilder::new()
                .description(Some(
                    "An error: its kind, what went wrong in words, and what it concerns.",
                ))
                .property(
                    "error",
                    string().description(Some(
                        "The kind: invalid, not_found, forbidden, limit_exceeded, …",
                    )),
                )
                .property(
                    "detail",
                    string().description(Some("What went wrong, in words.")),
                )
                .property(
                    "field",
                    string().description(Some("The input it concerns, when one does.")),
                )
                .required("detail")
                .into()
        });
    for item in openapi.paths.paths.values_mut() {
        let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add(op, authenticated, path_params);
        }
    }
}

fn add(op: &mut Operation, authenticated: bool, path_params: bool) {
    use utoipa::openapi::path::ParameterIn;
    let params = op.parameters.as_deref().unwrap_or_default();
    let in_path = path_params || params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let body = op.request_body.is_some();
    // An operation with `security(())` is public even in the authenticated document.
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let mut statuses: Vec<(&str, &str)> = vec![
        ("429", "Too many failed authentications from this address: wait Retry-After seconds."),
        ("503", "The store is unreachable or full; retry after Retry-After seconds. Nothing was written."),
    ];
    if in_path || body || !params.is_empty() {
        statuses.push((
            "400",
            "Invalid input, named in `field`; nothing was written.",
        ));
        // An id in the path, the query or the body can name something that does not exist.
        statuses.push(("404", "No such object (or none the caller may see)."));
    }
    if body {
        statuses.push(("413", "The body is larger than the API accepts."));
    }
    if authenticated && !public {
        statuses.push(("401", "No valid credentials."));
        statuses.push((
            "403",
            "The caller lacks the permission the operation needs; `permission` names it.",
        ));
    }
    for (status, description) in statuses {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}
