-- What introspection (RFC 7662) reports about a token.
ALTER TABLE access_tokens
    ADD COLUMN issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN scopes TEXT[] NOT NULL DEFAULT '{}';
