-- Single sign-on per SP, the acr levels a session may serve it, and the fewest characters
-- of state and nonce it must send.
ALTER TABLE service_providers
    ADD COLUMN sso BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN sso_acr_values TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN min_random_length INTEGER NOT NULL DEFAULT 43 CHECK (min_random_length BETWEEN 22 AND 43);
