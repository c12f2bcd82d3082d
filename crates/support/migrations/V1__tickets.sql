-- One row per ticket: the columns the service searches on, and the whole state as JSON.
CREATE TABLE tickets (
    id UUID PRIMARY KEY,
    partner_kind TEXT NOT NULL CHECK (partner_kind IN ('sp', 'idp')),
    partner_id TEXT NOT NULL,
    status TEXT NOT NULL,
    severity SMALLINT NOT NULL CHECK (severity BETWEEN 1 AND 5),
    scope TEXT NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    -- When the scheduler must look at it next; NULL once closed.
    next_due_at TIMESTAMPTZ,
    -- The ticket without its history (domain::ticket::Ticket as JSON).
    state JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX tickets_due ON tickets (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX tickets_partner ON tickets (partner_kind, partner_id, opened_at);
CREATE INDEX tickets_opened ON tickets (opened_at);

-- Who did what, when: appended, never changed.
CREATE TABLE history (
    ticket_id UUID NOT NULL REFERENCES tickets (id),
    seq INTEGER NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    actor JSONB NOT NULL,
    action JSONB NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);
