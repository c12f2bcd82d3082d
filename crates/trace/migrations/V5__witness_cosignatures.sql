-- Witnesses' cosignatures of the log's checkpoints (C2SP tlog-cosignature): the note
-- signature line each witness answered, kept with the checkpoint it cosigns. A witness's
-- largest cosigned size is where its next consistency proof starts.
CREATE TABLE witness_cosignatures (
    -- The witness's verifier key, as configured.
    witness TEXT NOT NULL,
    size BIGINT NOT NULL REFERENCES checkpoints (size),
    -- `— <name> <base64>` and its newline.
    signature TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (witness, size)
);
CREATE INDEX witness_cosignatures_size ON witness_cosignatures (size);
