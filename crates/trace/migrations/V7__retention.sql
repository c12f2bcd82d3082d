-- Purges of the records past the retention (`retention.rs`): a purge's row is written with
-- its `trace.purged` record, before anything is deleted, and finished once every record up
-- to its cut and every connection summary they alone held are gone. An unfinished one is
-- finished, with its own cut, by the next purge. The log is verified from the largest cut.
CREATE TABLE purges (
    cut BIGINT PRIMARY KEY,
    event_id UUID NOT NULL,
    older_than TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    records BIGINT NOT NULL DEFAULT 0,
    connections_removed BIGINT NOT NULL DEFAULT 0,
    connections_rebuilt BIGINT NOT NULL DEFAULT 0
);
