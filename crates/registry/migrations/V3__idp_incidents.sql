-- Incidents support opened on an IdP: the IdP stays disabled while one is open.
CREATE TABLE idp_incidents (
    ticket_id UUID PRIMARY KEY,
    idp_id TEXT NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at TIMESTAMPTZ
);
CREATE INDEX idp_incidents_open ON idp_incidents (idp_id) WHERE resolved_at IS NULL;
