-- Identity theft (terms §7): an account suspended by an operator is refused at every SP
-- until the suspension is lifted; the case and reason of the latest change are kept with
-- it, the whole history is in the proof store (`account.*`).
ALTER TABLE accounts ADD COLUMN suspended_at TIMESTAMPTZ;
ALTER TABLE accounts ADD COLUMN suspension_case TEXT;
ALTER TABLE accounts ADD COLUMN suspension_reason TEXT;
-- The suspension ends every live session and token of the account: found by it.
CREATE INDEX sessions_by_account ON sessions (account_id) WHERE ended_at IS NULL;
CREATE INDEX access_tokens_by_account ON access_tokens (account_id) WHERE revoked_at IS NULL;
CREATE INDEX grants_by_account ON grants (account_id) WHERE used_at IS NULL;
