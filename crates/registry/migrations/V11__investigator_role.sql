-- Investigators: people who look connections up in the proof store through the gateway's
-- investigation API (trace checks their sign-in against this row).
ALTER TABLE people DROP CONSTRAINT people_role_check;
ALTER TABLE people ADD CONSTRAINT people_role_check CHECK (role IN ('contact', 'level1',
    'level2', 'level3', 'production_manager', 'product_owner', 'partner_relations',
    'investigator'));
