-- Governed decisions: the people who decide, the approvals they decide and the audit trail of
-- every step. Portable SQL, as 0001; times are RFC 3339 text in UTC.

-- People: managers who log in (argon2id password hashes) or act through personal tokens. Roles
-- are the approver roles the routing table names, comma-separated.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    roles TEXT NOT NULL,
    password_hash TEXT,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);

-- A person's API tokens: only the SHA-256 of each is stored, as for keys.
CREATE TABLE user_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- One row per approval; its steps are audit rows with its id as their subject. `version` goes
-- up with every change, so a decision made on what a manager saw fails if it changed since.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    queue TEXT NOT NULL,
    approver_role TEXT NOT NULL,
    reason_codes TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    score_id TEXT NOT NULL,
    delay_risk DOUBLE PRECISION NOT NULL,
    risk_band TEXT NOT NULL,
    recommended_carrier TEXT,
    warehouse TEXT NOT NULL,
    customer_tier TEXT,
    order_value DOUBLE PRECISION,
    raised_by TEXT,
    last_scored_by TEXT,
    approvals_needed INTEGER NOT NULL,
    claimed_by TEXT,
    claim_expires_at TEXT,
    first_approver TEXT,
    decided_by TEXT,
    decided_at TEXT,
    decision_reason TEXT,
    decision_comment TEXT,
    final_carrier TEXT,
    release_at TEXT
);
-- At most one open approval per shipment: a later score updates it, never opens another.
CREATE UNIQUE INDEX approvals_open_per_shipment ON approvals (shipment_id)
    WHERE state IN ('pending', 'escalated');
-- The queue reads by state and due time; risk, which every rescore changes, stays out of the
-- index so a rescore rewrites no index entry of it.
CREATE INDEX approvals_by_state_due ON approvals (state, due_at);

-- The audit trail: append-only (0007's triggers), each row chained to the one before it by
-- `hash` = SHA-256(previous hash, the row's canonical JSON).
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT,
    role TEXT,
    action TEXT NOT NULL,
    subject_kind TEXT,
    subject_id TEXT,
    before_json TEXT,
    after_json TEXT,
    reason_code TEXT,
    comment TEXT,
    request_id TEXT,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit (subject_kind, subject_id, seq);

-- The chain's newest row: every append updates it in its transaction, which orders appenders
-- (PostgreSQL's row lock, SQLite's write lock).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
