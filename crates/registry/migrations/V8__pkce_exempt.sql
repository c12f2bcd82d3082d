-- PKCE is required of every SP unless it is exempt; only a confidential client may be.
ALTER TABLE service_providers
    ADD COLUMN pkce_exempt BOOLEAN NOT NULL DEFAULT false,
    ADD CONSTRAINT pkce_exempt_confidential_only
        CHECK (NOT pkce_exempt OR token_endpoint_auth_method <> 'none');
