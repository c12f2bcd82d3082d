-- private_key_jwt: each client assertion's jti is accepted once (RFC 7523 §3).
CREATE TABLE client_assertions (
    jti_hash BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
