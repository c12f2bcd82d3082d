CREATE TABLE service_providers (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sector_identifier TEXT NOT NULL,
    -- HMAC-SHA256 of the secret under the registry's key; the secret itself is never stored.
    secret_hash BYTEA NOT NULL,
    secret_expires_at TIMESTAMPTZ NOT NULL,
    redirect_uris TEXT[] NOT NULL,
    post_logout_redirect_uris TEXT[] NOT NULL,
    scopes TEXT[] NOT NULL,
    claims TEXT[] NOT NULL,
    acr_values TEXT[] NOT NULL,
    idp_ids TEXT[] NOT NULL,
    id_token_signed_response_alg TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE identity_providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    acr_values TEXT[] NOT NULL,
    scopes TEXT[] NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE status_changes (
    id BIGSERIAL PRIMARY KEY,
    partner_kind TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
