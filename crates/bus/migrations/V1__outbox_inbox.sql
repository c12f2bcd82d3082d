-- Events waiting for the relay, written in the same transaction as the change they report.
CREATE TABLE outbox (
    seq        bigserial   PRIMARY KEY,
    id         uuid        NOT NULL UNIQUE,
    kind       text        NOT NULL,
    body       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Events already handled, per consumer (queue): redeliveries are recognised and skipped.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX inbox_processed_at ON inbox (processed_at);
