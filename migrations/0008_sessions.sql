-- People's sessions on the manager's pages: the cookie's SHA-256 (never the cookie), the
-- CSRF token its forms carry, and both expiries (idle, from last_seen_at; absolute).
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
