//! The rules of change requests as pure functions over plain values: whether a direct edit is
//! allowed, whether a caller may approve, whether a request may be committed (and whether now
//! or at its `live_from`), and whether what it changes was changed since it was opened. The
//! store and the API gather the facts and act on the answer; nothing here reads or writes.

use serde::Serialize;

pub use super::compare::{conflicts, diff, Conflict, FieldChange, StateSnapshot};

/// Whether a caller may change an environment's feature states and segment overrides directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectEdit {
    Allowed,
    /// The environment requires approvals and the caller is not its admin.
    ChangeRequestRequired {
        minimum_approvals: i64,
    },
}

/// `minimum_approvals`: the environment's setting (None: change requests are off).
pub fn direct_edit(minimum_approvals: Option<i64>, environment_admin: bool) -> DirectEdit {
    match minimum_approvals {
        Some(m) if !environment_admin => DirectEdit::ChangeRequestRequired {
            minimum_approvals: m,
        },
        _ => DirectEdit::Allowed,
    }
}

impl DirectEdit {
    /// The sentence a refused caller reads.
    pub fn refusal(self) -> Option<String> {
        match self {
            DirectEdit::Allowed => None,
            DirectEdit::ChangeRequestRequired { minimum_approvals } => Some(format!(
                "this environment requires change requests ({minimum_approvals} approval(s)): \
                 propose the change with POST /api/v1/environments/{{api_key}}/\
                 create-change-request/; only environment admins may change it directly"
            )),
        }
    }
}

/// Where a change request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Named apart from the health report's `Status` in the one OpenAPI document.
#[cfg_attr(feature = "openapi", schema(as = ChangeRequestStatus))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Committed,
    Closed,
}

impl Status {
    pub fn of(committed: bool, closed: bool) -> Status {
        match (committed, closed) {
            (true, _) => Status::Committed,
            (false, true) => Status::Closed,
            (false, false) => Status::Open,
        }
    }
}

/// Why an approval, a commit or a close is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The author approving their own request.
    OwnRequest,
    /// Already committed or closed: nothing more can happen to it.
    NotOpen(Status),
    /// Fewer approvals than the environment requires.
    NotApproved { approvals: i64, required: i64 },
    /// Committing or closing by someone who is neither the author nor an approver.
    NotAuthorOrApprover,
}

impl Refusal {
    /// Whether the refusal is about who asked (403) rather than the request's state (400).
    pub fn is_about_the_caller(&self) -> bool {
        matches!(self, Refusal::OwnRequest | Refusal::NotAuthorOrApprover)
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::OwnRequest => "the author of a change request cannot approve it: \
                                    another person with APPROVE_CHANGE_REQUEST must"
                .into(),
            Refusal::NotOpen(Status::Committed) => "the change request is already committed".into(),
            Refusal::NotOpen(_) => "the change request is closed".into(),
            Refusal::NotApproved {
                approvals,
                required,
            } => format!(
                "the change request has {approvals} of the {required} approval(s) this \
                 environment requires"
            ),
            Refusal::NotAuthorOrApprover => "only the author of a change request, or a person \
                                             with APPROVE_CHANGE_REQUEST, may commit or close it"
                .into(),
        }
    }
}

/// Whether `approver` may approve a request by `author` (actor keys) in `status`.
pub fn approve(status: Status, author: &str, approver: &str) -> Result<(), Refusal> {
    if status != Status::Open {
        return Err(Refusal::NotOpen(status));
    }
    if author == approver {
        return Err(Refusal::OwnRequest);
    }
    Ok(())
}

/// What committing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Apply the changes now.
    Now,
    /// Schedule them for this time (ms), still in the future.
    At(i64),
}

/// The facts a commit is decided on.
#[derive(Debug, Clone, Copy)]
pub struct CommitFacts {
    pub status: Status,
    /// The caller is the author, or holds APPROVE_CHANGE_REQUEST.
    pub author_or_approver: bool,
    pub approvals: i64,
    /// The environment's setting now (None: approvals are no longer required).
    pub required: Option<i64>,
    pub live_from: Option<i64>,
    pub now: i64,
}

/// Whether the request may be committed, and whether now or later.
pub fn commit(f: CommitFacts) -> Result<Commit, Refusal> {
    if f.status != Status::Open {
        return Err(Refusal::NotOpen(f.status));
    }
    if !f.author_or_approver {
        return Err(Refusal::NotAuthorOrApprover);
    }
    if let Some(required) = f.required {
        if f.approvals < required {
            return Err(Refusal::NotApproved {
                approvals: f.approvals,
                required,
            });
        }
    }
    Ok(match f.live_from {
        Some(at) if at > f.now => Commit::At(at),
        _ => Commit::Now,
    })
}

/// Whether the caller may close (withdraw) an open request.
pub fn close(status: Status, author_or_approver: bool) -> Result<(), Refusal> {
    if status != Status::Open {
        return Err(Refusal::NotOpen(status));
    }
    if !author_or_approver {
        return Err(Refusal::NotAuthorOrApprover);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_edits_need_admin_only_while_approvals_are_required() {
        assert_eq!(direct_edit(None, false), DirectEdit::Allowed);
        assert_eq!(direct_edit(Some(2), true), DirectEdit::Allowed);
        let refused = direct_edit(Some(2), false);
        assert_eq!(
            refused,
            DirectEdit::ChangeRequestRequired {
                minimum_approvals: 2
            }
        );
        assert!(refused.refusal().unwrap().contains("change request"));
        assert_eq!(DirectEdit::Allowed.refusal(), None);
    }

    #[test]
    fn the_author_never_approves_and_only_open_requests_are_approved() {
        assert_eq!(approve(Status::Open, "user:1", "user:2"), Ok(()));
        assert_eq!(
            approve(Status::Open, "user:1", "user:1"),
            Err(Refusal::OwnRequest)
        );
        assert!(Refusal::OwnRequest.is_about_the_caller());
        assert_eq!(
            approve(Status::Committed, "user:1", "user:2"),
            Err(Refusal::NotOpen(Status::Committed))
        );
        assert_eq!(
            approve(Status::Closed, "user:1", "user:2"),
            Err(Refusal::NotOpen(Status::Closed))
        );
    }

    fn facts() -> CommitFacts {
        CommitFacts {
            status: Status::Open,
            author_or_approver: true,
            approvals: 1,
            required: Some(1),
            live_from: None,
            now: 1_000,
        }
    }

    #[test]
    fn commit_needs_enough_approvals_then_applies_now_or_at_live_from() {
        assert_eq!(commit(facts()), Ok(Commit::Now));
        let short = CommitFacts {
            approvals: 1,
            required: Some(2),
            ..facts()
        };
        let refused = commit(short).unwrap_err();
        assert_eq!(
            refused,
            Refusal::NotApproved {
                approvals: 1,
                required: 2
            }
        );
        assert!(!refused.is_about_the_caller());
        assert!(refused.message().contains("1 of the 2"));
        // Approvals switched off since: nothing more is needed.
        let off = CommitFacts {
            approvals: 0,
            required: None,
            ..facts()
        };
        assert_eq!(commit(off), Ok(Commit::Now));
        let later = CommitFacts {
            live_from: Some(5_000),
            ..facts()
        };
        assert_eq!(commit(later), Ok(Commit::At(5_000)));
        // A live_from that passed while the request waited: apply now.
        let passed = CommitFacts {
            live_from: Some(999),
            ..facts()
        };
        assert_eq!(commit(passed), Ok(Commit::Now));
    }

    #[test]
    fn commit_and_close_are_the_author_or_an_approver_s_on_open_requests() {
        let stranger = CommitFacts {
            author_or_approver: false,
            ..facts()
        };
        assert_eq!(commit(stranger), Err(Refusal::NotAuthorOrApprover));
        let done = CommitFacts {
            status: Status::Committed,
            ..facts()
        };
        assert_eq!(commit(done), Err(Refusal::NotOpen(Status::Committed)));
        assert_eq!(close(Status::Open, true), Ok(()));
        assert_eq!(
            close(Status::Open, false),
            Err(Refusal::NotAuthorOrApprover)
        );
        assert_eq!(
            close(Status::Closed, true),
            Err(Refusal::NotOpen(Status::Closed))
        );
        assert_eq!(Status::of(true, false), Status::Committed);
        assert_eq!(Status::of(false, true), Status::Closed);
        assert_eq!(Status::of(false, false), Status::Open);
    }
}
