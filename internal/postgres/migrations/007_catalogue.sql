-- Items gain a topic and a description, searchable by words (an indexed
-- full-text vector over name and description), and can be retired: off
-- sale for good, kept for the orders that name them.
ALTER TABLE items ADD COLUMN topic       text NOT NULL DEFAULT '',
                  ADD COLUMN description text NOT NULL DEFAULT '',
                  ADD COLUMN retired_at  timestamptz,
                  ADD COLUMN search      tsvector GENERATED ALWAYS AS
                      (setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')) STORED;
CREATE INDEX items_search ON items USING gin (search) WHERE retired_at IS NULL;
CREATE INDEX items_topic ON items (topic, id) WHERE retired_at IS NULL;

---- create above / drop below ----

DROP INDEX items_topic;
DROP INDEX items_search;
ALTER TABLE items DROP COLUMN search, DROP COLUMN retired_at, DROP COLUMN description, DROP COLUMN topic;
