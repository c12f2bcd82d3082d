-- An SP's public keys (JWKS JSON) for private_key_jwt and encryption, and its choices of
-- signed and encrypted answers.
ALTER TABLE service_providers
    ADD COLUMN jwks TEXT NOT NULL DEFAULT '',
    ADD COLUMN userinfo_signed_response_alg TEXT NOT NULL DEFAULT '',
    ADD COLUMN id_token_encrypted_response_alg TEXT NOT NULL DEFAULT '',
    ADD COLUMN id_token_encrypted_response_enc TEXT NOT NULL DEFAULT '',
    ADD COLUMN userinfo_encrypted_response_alg TEXT NOT NULL DEFAULT '',
    ADD COLUMN userinfo_encrypted_response_enc TEXT NOT NULL DEFAULT '';
