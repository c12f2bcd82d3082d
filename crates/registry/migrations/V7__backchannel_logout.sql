-- Where an SP hears of a logout on its back channel (OpenID Connect Back-Channel Logout).
ALTER TABLE service_providers ADD COLUMN backchannel_logout_uri TEXT;
