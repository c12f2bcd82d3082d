-- People the hub knows by e-mail: partners' authorised contacts and support staff. Their
-- role decides what they may do in support; a contact acts only for its own partner.
CREATE TABLE people (
    email TEXT PRIMARY KEY CHECK (email = lower(email)),
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('contact', 'level1', 'level2', 'level3',
        'production_manager', 'product_owner', 'partner_relations')),
    partner_kind TEXT CHECK (partner_kind IN ('sp', 'idp')),
    partner_id TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((role = 'contact') = (partner_kind IS NOT NULL AND partner_id IS NOT NULL))
);
