-- An export of a case is recorded in the log (kind trace.case_exported); a later export of
-- the same case finds the earlier ones by their case reference.
CREATE INDEX events_case_exports ON events (((body::jsonb -> 'payload' ->> 'case')))
    WHERE kind = 'trace.case_exported';
-- The proof file's selections by SUB FI at an IdP and by source address.
CREATE INDEX connections_sub_fi ON connections (idp_id, sub_fi);
CREATE INDEX connections_source_ip ON connections (source_ip, started_at);
