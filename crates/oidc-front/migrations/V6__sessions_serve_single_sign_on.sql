-- What a session needs to sign the user in at another SP without the IdP: the methods
-- the IdP used and the claims it gave (released to each SP per its habilitation).
ALTER TABLE sessions
    ADD COLUMN amr TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN idp_claims JSONB NOT NULL DEFAULT '{}';
