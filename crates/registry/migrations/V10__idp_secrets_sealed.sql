-- An IdP's client secret (the hub's at that IdP) is stored sealed (`sealed_client_secret`,
-- an envelope under the registry's key-encryption key, bound to the IdP's id);
-- `client_secret` keeps a secret of an earlier release in clear only until the registry's
-- next start seals it and empties the column. Exactly one of the two is set.
ALTER TABLE identity_providers
    ALTER COLUMN client_secret DROP NOT NULL,
    ADD COLUMN sealed_client_secret TEXT,
    ADD CONSTRAINT identity_providers_secret_sealed_or_clear
        CHECK (num_nonnulls(client_secret, sealed_client_secret) = 1);
