-- Every transaction that changes a poll's counts also moves its counts_seq
-- up by one and sets counts_at, under the poll row's lock, so the commits of
-- one poll are numbered in commit order. A read of the counts with their seq
-- tells which commits it includes: result's backlog answers drained only
-- once its cached results reach the seq of every poll, and counts_at is the
-- time of the last update it shows.
ALTER TABLE polls ADD COLUMN counts_seq bigint NOT NULL DEFAULT 0,
                  ADD COLUMN counts_at  timestamptz;
UPDATE polls p SET counts_at = (SELECT max(committed_at) FROM votes v WHERE v.poll = p.id);

---- create above / drop below ----

ALTER TABLE polls DROP COLUMN counts_at, DROP COLUMN counts_seq;
