-- The running counts move out of poll_options into a table of their own.
-- Every vote batch updates the counts, and every inserted vote's foreign key
-- check locks its option's row (FOR KEY SHARE). On the same row the two
-- piled up as multixacts and update chains that every check had to walk;
-- apart, the option rows the votes reference never change.
CREATE TABLE option_counts (
    poll   text   NOT NULL,
    option text   NOT NULL,
    votes  bigint NOT NULL DEFAULT 0 CHECK (votes >= 0),
    PRIMARY KEY (poll, option),
    FOREIGN KEY (poll, option) REFERENCES poll_options (poll, option)
);
INSERT INTO option_counts (poll, option, votes) SELECT poll, option, votes FROM poll_options;
ALTER TABLE poll_options DROP COLUMN votes;

---- create above / drop below ----

ALTER TABLE poll_options ADD COLUMN votes bigint NOT NULL DEFAULT 0 CHECK (votes >= 0);
UPDATE poll_options o SET votes = c.votes FROM option_counts c WHERE c.poll = o.poll AND c.option = o.option;
DROP TABLE option_counts;
