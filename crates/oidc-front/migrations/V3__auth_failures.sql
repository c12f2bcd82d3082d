-- Failed client authentications and bad codes, per client and per source address, shared
-- by every replica; a subject over the limit is blocked with a growing back-off.
CREATE TABLE auth_failures (
    subject TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL,
    blocks INTEGER NOT NULL DEFAULT 0,
    blocked_until TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
