-- prev_choice holds the choice a vote replaced (NULL for a voter's first
-- vote), so one INSERT … ON CONFLICT DO UPDATE can return what the counts
-- must move from: the conflicting row is locked and read by the statement
-- itself, which no separate read can match under concurrent inserts.
ALTER TABLE votes ADD COLUMN prev_choice text;

---- create above / drop below ----

ALTER TABLE votes DROP COLUMN prev_choice;
