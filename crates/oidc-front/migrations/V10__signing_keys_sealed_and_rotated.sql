-- Several signing keys per algorithm, each with the time it starts signing and the time
-- it leaves the JWKS (none while it is the newest): every replica picks the same key
-- from these times. A private key is stored sealed (`sealed_jwk`, an envelope under the
-- key-encryption key); `private_jwk` keeps a key of an earlier release in clear only
-- until the front's next start seals it and empties the column.
DROP INDEX signing_keys_one_per_alg;
ALTER TABLE signing_keys
    ALTER COLUMN private_jwk DROP NOT NULL,
    ADD COLUMN sealed_jwk TEXT,
    ADD COLUMN activates_at TIMESTAMPTZ,
    ADD COLUMN retires_at TIMESTAMPTZ;
UPDATE signing_keys SET activates_at = created_at;
ALTER TABLE signing_keys
    ALTER COLUMN activates_at SET NOT NULL,
    ADD CONSTRAINT signing_keys_sealed_or_clear CHECK (sealed_jwk IS NOT NULL OR private_jwk IS NOT NULL);
CREATE INDEX signing_keys_by_alg ON signing_keys (alg, activates_at);
