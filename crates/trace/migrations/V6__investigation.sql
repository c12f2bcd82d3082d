-- Investigations (`SearchConnections`) page through one selection newest first by the key
-- (started_at, connection_id): an index per selection ending with that key answers each
-- page from where the last one stopped, however many connections the subject has. The
-- account's and the SUB FI's replace their narrower ones, whose queries they serve too.
CREATE INDEX connections_account_started ON connections (account_id, started_at, connection_id);
DROP INDEX connections_account;
CREATE INDEX connections_sub_fi_started ON connections (idp_id, sub_fi, started_at, connection_id);
DROP INDEX connections_sub_fi;
CREATE INDEX connections_sub_fs_started ON connections (sp_id, sub_fs, started_at, connection_id);
