-- A person is known by the IdP that signs them in and the subject it gives them, not by
-- an e-mail claim any IdP may assert: the IdP is enrolled with the person, the subject
-- at enrolment or at the person's first use (bound_at).
ALTER TABLE people
    ADD COLUMN idp_id TEXT,
    ADD COLUMN idp_sub TEXT,
    ADD COLUMN bound_at TIMESTAMPTZ,
    ADD CONSTRAINT people_sub_needs_its_idp CHECK (idp_sub IS NULL OR idp_id IS NOT NULL);
