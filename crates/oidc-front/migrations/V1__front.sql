CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX signing_keys_one_per_alg ON signing_keys (alg);

-- The hub's account for one IdP subject (SUB FI).
CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    idp_id TEXT NOT NULL,
    sub_fi TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (idp_id, sub_fi)
);

-- A sign-in in progress, from /authorize to the IdP's callback. Keyed by the SHA-256 of
-- the browser's flow cookie.
CREATE TABLE flows (
    id_hash BYTEA PRIMARY KEY,
    connection_id UUID NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    state TEXT NOT NULL,
    nonce TEXT NOT NULL,
    scopes TEXT[] NOT NULL,
    acr_min TEXT NOT NULL,
    login_hint TEXT,
    code_challenge TEXT,
    locale TEXT NOT NULL,
    csrf TEXT NOT NULL,
    idp_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('choosing', 'at_idp', 'done', 'failed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX flows_expiry ON flows (expires_at);

-- A hub session after a successful IdP sign-in.
CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,
    sid UUID NOT NULL UNIQUE,
    connection_id UUID NOT NULL,
    account_id UUID NOT NULL REFERENCES accounts (id),
    idp_id TEXT NOT NULL,
    sub_fi TEXT NOT NULL,
    idp_id_token TEXT NOT NULL,
    acr TEXT NOT NULL,
    auth_time TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    logout_state_hash BYTEA UNIQUE,
    logout_redirect_uri TEXT,
    logout_client_state TEXT,
    logout_client_id TEXT
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- One authorization code and what it grants. Only the code's SHA-256 is kept.
CREATE TABLE grants (
    code_hash BYTEA PRIMARY KEY,
    connection_id UUID NOT NULL,
    sid UUID NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    nonce TEXT NOT NULL,
    scopes TEXT[] NOT NULL,
    code_challenge TEXT,
    acr TEXT NOT NULL,
    amr TEXT[] NOT NULL,
    auth_time TIMESTAMPTZ NOT NULL,
    account_id UUID NOT NULL,
    idp_id TEXT NOT NULL,
    sub_fi TEXT NOT NULL,
    sub_fs TEXT NOT NULL,
    -- Claims already limited to the scopes asked and the SP's habilitation.
    claims JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX grants_expiry ON grants (expires_at);

CREATE TABLE access_tokens (
    token_hash BYTEA PRIMARY KEY,
    code_hash BYTEA NOT NULL REFERENCES grants (code_hash) ON DELETE CASCADE,
    connection_id UUID NOT NULL,
    client_id TEXT NOT NULL,
    sub_fs TEXT NOT NULL,
    account_id UUID NOT NULL,
    idp_id TEXT NOT NULL,
    acr TEXT NOT NULL,
    claims JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX access_tokens_code ON access_tokens (code_hash);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
