-- The suspension's indexes by account without a predicate: partial on `revoked_at IS NULL`,
-- `ended_at IS NULL` or `used_at IS NULL`, each was a candidate for every lookup of a live
-- token, session or code (the predicate is implied by theirs), and a prepared statement
-- planned while the table was small kept scanning the whole index as it grew (userinfo
-- read 2,600 buffers per call in the bench instead of 9).
DROP INDEX sessions_by_account;
DROP INDEX access_tokens_by_account;
DROP INDEX grants_by_account;
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX access_tokens_by_account ON access_tokens (account_id);
CREATE INDEX grants_by_account ON grants (account_id);
