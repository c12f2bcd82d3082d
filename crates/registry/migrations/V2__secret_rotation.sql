-- During a rotation the previous secret stays valid until the end of the overlap.
ALTER TABLE service_providers
    ADD COLUMN previous_secret_hash BYTEA,
    ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;
