-- A logout finds every SP its session signed the user in at (back-channel logout).
CREATE INDEX grants_session ON grants (sid);
