-- Polls, their options with the running counts, and one row per (poll, voter).
CREATE TABLE polls (
    id         text PRIMARY KEY,
    title      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE poll_options (
    poll     text   NOT NULL REFERENCES polls (id),
    option   text   NOT NULL,
    position int    NOT NULL,
    votes    bigint NOT NULL DEFAULT 0 CHECK (votes >= 0),
    PRIMARY KEY (poll, option)
);

-- The vote that counts for each voter: the one with the greatest (version, event_id).
CREATE TABLE votes (
    poll         text        NOT NULL,
    voter        text        NOT NULL,
    choice       text        NOT NULL,
    version      bigint      NOT NULL,
    event_id     text        NOT NULL,
    node         text        NOT NULL DEFAULT '',
    cast_at      timestamptz,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll, voter),
    FOREIGN KEY (poll, choice) REFERENCES poll_options (poll, option)
);

---- create above / drop below ----

DROP TABLE votes;
DROP TABLE poll_options;
DROP TABLE polls;
