-- The head of the hash chain: every stored event extends it, one at a time.
CREATE TABLE chain_head (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (TRUE, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Every event received, append-only, each hashed with the one before:
-- hash = SHA-256(prev_hash || body), body being the exact JSON received.
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    connection_id TEXT,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX events_connection ON events (connection_id, occurred_at);

-- One row per sign-in, the fields of the terms of use gathered from its steps.
CREATE TABLE connections (
    connection_id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    source_ip TEXT,
    source_port INTEGER,
    sp_id TEXT,
    idp_id TEXT,
    acr TEXT,
    sub_fi TEXT,
    sub_fs TEXT,
    account_id TEXT,
    session_id TEXT,
    outcome TEXT NOT NULL,
    error_code TEXT
);
CREATE INDEX connections_sp ON connections (sp_id, started_at);
CREATE INDEX connections_sub_fs ON connections (sub_fs);
CREATE INDEX connections_account ON connections (account_id);
