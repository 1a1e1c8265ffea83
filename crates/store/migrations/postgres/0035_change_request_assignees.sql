-- Assigned approvers (issue 11): the author of a change request may name users who must look
-- at it. As in Flagsmith, an assignment is an approval row not approved yet (approved_at
-- NULL, required TRUE); the assignee's approval fills in approved_at. Only rows with an
-- approved_at count as approvals.
-- PostgreSQL dialect; keep in step with the other directory.
ALTER TABLE change_request_approvals ALTER COLUMN approved_at DROP NOT NULL;
ALTER TABLE change_request_approvals ADD COLUMN required BOOLEAN NOT NULL DEFAULT FALSE;
-- Who is assigned what: `list-change-requests/?assignee=` looks here.
CREATE INDEX change_request_approvals_user ON change_request_approvals(user_id, change_request_id);
