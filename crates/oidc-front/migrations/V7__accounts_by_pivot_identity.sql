-- An account is keyed either by the IdP's subject or, when the deployment maps accounts
-- from the pivot identity, by its keyed hash (one account for a person through any IdP).
ALTER TABLE accounts ADD COLUMN pivot_hash BYTEA;
ALTER TABLE accounts DROP CONSTRAINT accounts_idp_id_sub_fi_key;
CREATE UNIQUE INDEX accounts_by_idp_subject ON accounts (idp_id, sub_fi) WHERE pivot_hash IS NULL;
CREATE UNIQUE INDEX accounts_by_pivot ON accounts (pivot_hash) WHERE pivot_hash IS NOT NULL;
