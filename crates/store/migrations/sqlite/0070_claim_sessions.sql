-- A running job names the claim session of the worker that holds it (queue::session): while
-- that session lives the claim holds; once it ends (the process died, its connection dropped)
-- any worker may reclaim the job at once instead of waiting for `lease_until`, which stays as
-- the backstop for a claimant that is alive but stalled.
ALTER TABLE publish_jobs ADD COLUMN lease_session BIGINT NULL;
