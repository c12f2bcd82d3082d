-- One trip of a browser to an IdP and back. Keyed by the SHA-256 of the state sent.
CREATE TABLE round_trips (
    state_hash BYTEA PRIMARY KEY,
    flow_id TEXT NOT NULL,
    idp_id TEXT NOT NULL,
    sp_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    -- Sent to the IdP's token endpoint in clear, so it cannot be kept hashed; it is
    -- worthless without the code, which never reaches the hub's storage.
    pkce_verifier TEXT NOT NULL,
    acr_values TEXT[] NOT NULL,
    required_claims TEXT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX round_trips_expiry ON round_trips (expires_at);
