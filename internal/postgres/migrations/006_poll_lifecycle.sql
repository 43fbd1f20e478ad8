-- A poll is open for votes from opens_at until closes_at (NULL: no bound).
-- A vote counts if it was cast (captured) inside that window, whenever it is
-- drained; closing early moves closes_at to the time of closing.
ALTER TABLE polls ADD COLUMN opens_at  timestamptz,
                  ADD COLUMN closes_at timestamptz,
                  ADD CONSTRAINT polls_window CHECK (opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at);

---- create above / drop below ----

ALTER TABLE polls DROP CONSTRAINT polls_window, DROP COLUMN closes_at, DROP COLUMN opens_at;
