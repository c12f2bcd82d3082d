-- A connection's row is updated by each later request of it (token, userinfo, logout):
-- room left on its page lets those updates stay there (HOT), without index entries.
ALTER TABLE connections SET (fillfactor = 70);
