-- The proof store becomes a transparency log (RFC 6962 / RFC 9162 Merkle tree, C2SP signed
-- checkpoints). Record `seq` is leaf `seq - 1`; its leaf hash is SHA-256(0x00 || body).

-- The tree as its stored hashes (Go sumdb/tlog's layout): a leaf's hash, and the root of
-- each complete subtree once its last leaf is in, at its stored-hash index. Written once.
CREATE TABLE tree_hashes (
    idx BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

-- The head: how many records the tree holds, its root, and the roots of its complete
-- subtrees (left to right) that the next append extends. Every append locks it.
CREATE TABLE tree_head (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    frontier BYTEA[] NOT NULL
);
INSERT INTO tree_head (id, size, root, frontier) VALUES (TRUE, 0, sha256(''), '{}');

-- Signed checkpoints (C2SP signed notes), one per tree size.
CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The hash chain the log replaces. Records stored before keep their links; at its next
-- start the service checks each against its link and appends it to the log, in seq order
-- (`log::take_over_legacy_chain`), before it takes new records. Records after have none.
ALTER TABLE events RENAME COLUMN prev_hash TO legacy_prev_hash;
ALTER TABLE events RENAME COLUMN hash TO legacy_hash;
ALTER TABLE events ALTER COLUMN legacy_prev_hash DROP NOT NULL;
ALTER TABLE events ALTER COLUMN legacy_hash DROP NOT NULL;
ALTER TABLE chain_head RENAME TO legacy_chain_head;
