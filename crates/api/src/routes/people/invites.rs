//! Invitations: `/api/v1/organisations/{id}/invite-links/` (shareable links, reusable until
//! they expire or are deleted), `…/invite/` and `…/invites/` (per-email invites, used once,
//! mailed when SMTP is configured), managed by organisation `ADMIN`s; and accepting them: by
//! signing up with `invite_hash` (`routes::auth`), or, signed in, `POST /api/v1/users/join/{hash}/`
//! (an emailed invite) and `/api/v1/users/join/link/{hash}/` (a link).

use axum::extract::State;
use axum::http::{header, request::Parts, StatusCode};
use flagstone_access::{secrets, Role};
use flagstone_store::accounts::invites::{
    self, EmailInvite, Found, InviteKind, InviteLink, NewInvite, DEFAULT_TTL_MS,
    MAX_INVITES_PER_REQUEST,
};
use flagstone_store::accounts::members::{self, UserOrganisation};
use flagstone_store::accounts::users;
use flagstone_store::{organisations, StoreError};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::members::parse_role;
use super::require_org_admin;
use crate::auth::credentials::{over_https, INVITE_PREFIX};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::mail::Mail;
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_links, create_link))
        .routes(routes!(delete_link))
        .routes(routes!(invite))
        .routes(routes!(list_invites))
        .routes(routes!(delete_invite))
        .routes(routes!(join_by_email_invite))
        .routes(routes!(join_by_link))
}

/// The invite a presented hash belongs to, if it is valid now: known, matching, not expired.
pub(crate) async fn find_valid(s: &AppState, hash: &str, now: i64) -> ApiResult<Option<Found>> {
    let Some(lookup) = secrets::lookup_of(hash.trim(), INVITE_PREFIX) else {
        return Ok(None);
    };
    let mut tx = s.store.read().await?;
    let Some(found) = invites::find(&mut tx, lookup).await? else {
        return Ok(None);
    };
    Ok(
        (secrets::verify(hash.trim(), &found.secret_hash) && found.expires_at > now)
            .then_some(found),
    )
}

/// The invite of a sign-up's `invite_hash`, checked against the email signing up: a 400 that
/// names the field otherwise.
pub(crate) async fn for_sign_up(s: &AppState, hash: &str, email: &str) -> ApiResult<Found> {
    let found = find_valid(s, hash, s.auth.now_ms()).await?.ok_or_else(|| {
        StoreError::invalid(
            "invite_hash",
            "is not a valid invitation: it may have expired, been used or been withdrawn",
        )
    })?;
    check_email(&found, email)?;
    Ok(found)
}

/// An emailed invite may only be used by the address it was sent to.
fn check_email(found: &Found, email: &str) -> ApiResult<()> {
    match &found.email {
        Some(to) if users::email_key(to) != users::email_key(email) => Err(StoreError::invalid(
            "email",
            "this invitation was sent to another email address",
        )
        .into()),
        _ => Ok(()),
    }
}

/// The join link of an invite: under `--public-url` if configured, else under the address the
/// request came to.
fn join_url(s: &AppState, parts: &Parts, hash: &str) -> String {
    if let Some(base) = &s.invitations.public_url {
        return format!("{}/invite/{hash}", base.trim_end_matches('/'));
    }
    match parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(host) => {
            let scheme = if over_https(parts) { "https" } else { "http" };
            format!("{scheme}://{host}/invite/{hash}")
        }
        None => format!("/invite/{hash}"),
    }
}

/// `expires_at` of a new invite: given (in the future) or in 7 days.
fn expiry(s: &AppState, given: Option<i64>) -> (i64, i64) {
    let now = s.auth.now_ms();
    (now, given.unwrap_or(now + DEFAULT_TTL_MS))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLink {
    /// `ADMIN` or `USER` (default): the role of those who join with the link.
    #[serde(default = "user_role")]
    role: String,
    /// When the link stops working: an ISO-8601 date-time with a zone (what the answers
    /// print) or Unix ms; default in 7 days.
    #[serde(default, deserialize_with = "super::keys::ms_or_iso8601")]
    #[schema(value_type = Option<String>)]
    expires_at: Option<i64>,
}

fn user_role() -> String {
    Role::User.as_str().to_string()
}

/// A new invite link, with its hash: shown only this once.
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedLink {
    #[serde(flatten)]
    link: InviteLink,
    /// The secret of the link (Flagsmith's `hash`), for `invite_hash` and `/users/join/link/`.
    hash: String,
    /// The page that accepts it.
    join_url: String,
}

/// The organisation's invite links (never their hashes), expired ones included.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/invite-links", tag = "people",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<InviteLink>),
        (status = 403, description = "Not an admin of the organisation")))]
async fn list_links(
    State(s): State<AppState>,
    caller: Caller,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<InviteLink>>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(invites::list_links(&mut tx, org).await?))
}

/// Makes an invite link; its hash is in this response only.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/invite-links", tag = "people",
    params(("id" = i64, Path)), request_body = NewLink,
    responses((status = 201, body = CreatedLink),
        (status = 400, description = "Unknown role, expiry in the past"),
        (status = 403, description = "Not an admin of the organisation")))]
async fn create_link(
    State(s): State<AppState>,
    caller: Caller,
    parts: Parts,
    Path(org): Path<i64>,
    Json(req): Json<NewLink>,
) -> ApiResult<(StatusCode, Json<CreatedLink>)> {
    require_org_admin(&s, &caller, org).await?;
    let role = parse_role("role", &req.role)?;
    let (now, expires_at) = expiry(&s, req.expires_at);
    let secret = secrets::new_secret(INVITE_PREFIX);
    let mut ch = s.store.change(caller.actor()).await?;
    let id = invites::create(
        &mut ch,
        org,
        &NewInvite {
            role,
            email: None,
            groups: &[],
            invited_by: caller.user_id(),
            lookup: &secret.lookup,
            secret_hash: &secret.hash,
            expires_at,
        },
        now,
    )
    .await?;
    let link = invites::get_link(ch.tx(), org, id).await?;
    ch.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedLink {
            link,
            join_url: join_url(&s, &parts, &secret.secret),
            hash: secret.secret,
        }),
    ))
}

/// Deletes an invite link: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}/invite-links/{link_id}",
    tag = "people", params(("id" = i64, Path), ("link_id" = i64, Path)),
    responses((status = 204), (status = 404, description = "No such link")))]
async fn delete_link(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    invites::delete(&mut ch, org, InviteKind::Link, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    email: String,
    /// `ADMIN` or `USER` (default).
    #[serde(default = "user_role")]
    role: String,
    /// Groups of the organisation the new member joins.
    #[serde(default)]
    permission_groups: Option<Vec<i64>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Invitations {
    #[serde(default)]
    invites: Vec<InviteRequest>,
    /// Flagsmith's older form: addresses invited as `USER`s.
    #[serde(default)]
    emails: Vec<String>,
    /// When the invitations stop working: an ISO-8601 date-time with a zone or Unix ms;
    /// default in 7 days.
    #[serde(default, deserialize_with = "super::keys::ms_or_iso8601")]
    #[schema(value_type = Option<String>)]
    expires_at: Option<i64>,
}

/// One invitation made, and how it reached its person.
#[derive(Serialize, utoipa::ToSchema)]
struct SentInvite {
    invite: EmailInvite,
    /// Whether it was mailed.
    email_sent: bool,
    /// Why mailing failed, if it was tried.
    email_error: Option<String>,
    /// The join link, only when it was not mailed: give it to the person yourself. Never
    /// shown again.
    join_url: Option<String>,
}

/// Invites people by email. With SMTP configured (`--smtp-url`, `--public-url`) each is mailed
/// its join link; otherwise (or when mailing fails) the link is in this response only. An
/// invitation still waiting for the same email is a conflict; the whole request is refused.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/invite", tag = "people",
    params(("id" = i64, Path)), request_body = Invitations,
    responses((status = 201, body = Vec<SentInvite>),
        (status = 400, description = "A bad email or role, an unknown group, an invitation already waiting"),
        (status = 403, description = "Not an admin of the organisation")))]
async fn invite(
    State(s): State<AppState>,
    caller: Caller,
    parts: Parts,
    Path(org): Path<i64>,
    Json(req): Json<Invitations>,
) -> ApiResult<(StatusCode, Json<Vec<SentInvite>>)> {
    require_org_admin(&s, &caller, org).await?;
    let mut wanted: Vec<InviteRequest> = req.invites;
    wanted.extend(req.emails.into_iter().map(|email| InviteRequest {
        email,
        role: user_role(),
        permission_groups: None,
    }));
    if wanted.is_empty() {
        return Err(StoreError::invalid("invites", "name at least one email to invite").into());
    }
    if wanted.len() > MAX_INVITES_PER_REQUEST {
        return Err(StoreError::invalid(
            "invites",
            format!("at most {MAX_INVITES_PER_REQUEST} invitations per request"),
        )
        .into());
    }
    let (now, expires_at) = expiry(&s, req.expires_at);
    let mut made = Vec::new();
    let mut ch = s.store.change(caller.actor()).await?;
    for w in &wanted {
        let role = parse_role("role", &w.role)?;
        let secret = secrets::new_secret(INVITE_PREFIX);
        let groups = w.permission_groups.clone().unwrap_or_default();
        let id = invites::create(
            &mut ch,
            org,
            &NewInvite {
                role,
                email: Some(&w.email),
                groups: &groups,
                invited_by: caller.user_id(),
                lookup: &secret.lookup,
                secret_hash: &secret.hash,
                expires_at,
            },
            now,
        )
        .await?;
        made.push((invites::get_email(ch.tx(), org, id).await?, secret.secret));
    }
    let org_name = organisations::get(ch.tx(), org).await?.name;
    ch.commit().await?;

    let mut sent = Vec::with_capacity(made.len());
    for (invite, hash) in made {
        let url = join_url(&s, &parts, &hash);
        let (email_sent, email_error) = match (&s.invitations.mailer, &s.invitations.public_url) {
            (Some(mailer), Some(_)) => {
                let mail = invitation_mail(&invite, &org_name, caller.actor().name.as_str(), &url);
                match mailer.send(mail).await {
                    Ok(()) => (true, None),
                    Err(e) => {
                        tracing::warn!(organisation = org, invite = invite.id, error = %e, "invitation not mailed");
                        (false, Some(e))
                    }
                }
            }
            _ => (false, None),
        };
        sent.push(SentInvite {
            join_url: (!email_sent).then_some(url),
            invite,
            email_sent,
            email_error,
        });
    }
    Ok((StatusCode::CREATED, Json(sent)))
}

fn invitation_mail(invite: &EmailInvite, org: &str, inviter: &str, url: &str) -> Mail {
    let role = if invite.role == Role::Admin.as_str() {
        "an administrator"
    } else {
        "a member"
    };
    Mail {
        to: invite.email.clone(),
        subject: format!("You are invited to {org} on Flagstone"),
        text: format!(
            "{inviter} invited you to join the organisation {org} on Flagstone as {role}.\n\n\
             Accept the invitation here:\n\n    {url}\n\n\
             The link works once, until {} (UTC). If you did not expect this, ignore this mail.\n",
            flagstone_store::clock::iso8601(invite.expires_at)
        ),
    }
}

/// Emailed invitations that wait for an answer, expired ones included.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/invites", tag = "people",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<EmailInvite>),
        (status = 403, description = "Not an admin of the organisation")))]
async fn list_invites(
    State(s): State<AppState>,
    caller: Caller,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<EmailInvite>>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(invites::list_emails(&mut tx, org).await?))
}

/// Withdraws an emailed invitation: its link stops working at once.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}/invites/{invite_id}", tag = "people",
    params(("id" = i64, Path), ("invite_id" = i64, Path)),
    responses((status = 204), (status = 404, description = "No such invitation")))]
async fn delete_invite(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    invites::delete(&mut ch, org, InviteKind::Email, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn join(
    s: AppState,
    caller: Caller,
    hash: String,
    kind: InviteKind,
) -> ApiResult<Json<UserOrganisation>> {
    let user_id = caller.require_user()?;
    let now = s.auth.now_ms();
    let found = find_valid(&s, &hash, now)
        .await?
        .filter(|f| f.kind == kind)
        .ok_or(StoreError::not_found("invitation"))?;
    let user = crate::auth::caller::current_user(&s, &caller).await?;
    check_email(&found, &user.email)?;
    let mut ch = s.store.change(caller.actor()).await?;
    invites::accept(&mut ch, &found, user_id, &user.email, now).await?;
    let org = members::organisations_of(ch.tx(), user_id)
        .await?
        .into_iter()
        .find(|o| o.id == found.organisation_id)
        .ok_or(ApiError::Store(StoreError::not_found("organisation")))?;
    ch.commit().await?;
    tracing::info!(
        user = user_id,
        organisation = org.id,
        "joined through an invitation"
    );
    Ok(Json(org))
}

/// Joins the organisation of an emailed invitation with the signed-in account (whose email
/// must be the one invited). The invitation is used up. A member already keeps its role.
#[utoipa::path(post, path = "/api/v1/users/join/{hash}", tag = "people",
    params(("hash" = String, Path)),
    responses((status = 200, body = UserOrganisation),
        (status = 400, description = "The invitation was sent to another email"),
        (status = 403, description = "Not a user account"),
        (status = 404, description = "No such invitation, or it expired or was withdrawn")))]
async fn join_by_email_invite(
    State(s): State<AppState>,
    caller: Caller,
    Path(hash): Path<String>,
) -> ApiResult<Json<UserOrganisation>> {
    join(s, caller, hash, InviteKind::Email).await
}

/// Joins the organisation of an invite link with the signed-in account.
#[utoipa::path(post, path = "/api/v1/users/join/link/{hash}", tag = "people",
    params(("hash" = String, Path)),
    responses((status = 200, body = UserOrganisation),
        (status = 403, description = "Not a user account"),
        (status = 404, description = "No such link, or it expired or was deleted")))]
async fn join_by_link(
    State(s): State<AppState>,
    caller: Caller,
    Path(hash): Path<String>,
) -> ApiResult<Json<UserOrganisation>> {
    join(s, caller, hash, InviteKind::Link).await
}
