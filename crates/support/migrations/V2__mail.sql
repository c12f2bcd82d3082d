-- Inbound messages that became a ticket or a reply: how replies find their thread, and
-- how a message posted twice is recognised.
CREATE TABLE mail_messages (
    message_id TEXT PRIMARY KEY,
    ticket_id UUID NOT NULL REFERENCES tickets (id),
    received_at TIMESTAMPTZ NOT NULL
);

-- Messages that could not be used, kept whole with the reason, for staff to look at.
CREATE TABLE mail_quarantine (
    id UUID PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    sender TEXT,
    reason TEXT NOT NULL,
    raw BYTEA NOT NULL
);
