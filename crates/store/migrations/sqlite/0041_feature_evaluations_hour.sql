-- Flag-usage retention (issue 13). Same text for SQLite and PostgreSQL.
-- The task processor deletes hourly rows older than the retention, oldest first, in bounded
-- batches: this index finds them without scanning the table.
CREATE INDEX feature_evaluations_hour ON feature_evaluations(hour);
