-- Archived features (Flagsmith's `is_archived`): hidden from the dashboard's default list and
-- kept out of the way, still evaluated and served exactly as before.
ALTER TABLE features ADD COLUMN is_archived BOOLEAN NOT NULL DEFAULT FALSE;
