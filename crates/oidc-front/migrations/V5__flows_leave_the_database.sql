-- A sign-in in progress now travels sealed in the browser's flow cookie.
DROP TABLE flows;
-- A connection completes once: a replayed IdP callback finds its connection taken.
CREATE UNIQUE INDEX sessions_connection ON sessions (connection_id);
