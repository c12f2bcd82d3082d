-- The SHA-256 of a message kept aside: the same message offered again (a Maildir pass
-- interrupted before its move, a second post) is kept once. Older rows have none.
ALTER TABLE mail_quarantine ADD COLUMN digest BYTEA;
CREATE UNIQUE INDEX mail_quarantine_digest ON mail_quarantine (digest);
