-- Assigned approvers (issue 11): the author of a change request may name users who must look
-- at it. As in Flagsmith, an assignment is an approval row not approved yet (approved_at
-- NULL, required TRUE); the assignee's approval fills in approved_at. Only rows with an
-- approved_at count as approvals.
-- SQLite cannot drop NOT NULL in place: the table is rebuilt. Keep in step with the other
-- directory.
CREATE TABLE change_request_approvals_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    change_request_id BIGINT NOT NULL REFERENCES change_requests(id) ON DELETE CASCADE,
    approver TEXT NOT NULL,
    approver_key TEXT NOT NULL,
    user_id BIGINT NULL,
    approved_at BIGINT NULL,
    required BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO change_request_approvals_new
    (id, change_request_id, approver, approver_key, user_id, approved_at, required)
    SELECT id, change_request_id, approver, approver_key, user_id, approved_at, FALSE
    FROM change_request_approvals;
DROP TABLE change_request_approvals;
ALTER TABLE change_request_approvals_new RENAME TO change_request_approvals;
CREATE UNIQUE INDEX change_request_approvals_once
    ON change_request_approvals(change_request_id, approver_key);
-- Who is assigned what: `list-change-requests/?assignee=` looks here.
CREATE INDEX change_request_approvals_user ON change_request_approvals(user_id, change_request_id);
