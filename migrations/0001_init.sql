-- dispatch-risk's store. Portable SQL: the same statements run on SQLite (the embedded default)
-- and PostgreSQL. Times are RFC 3339 text in UTC; flags are 0/1 integers.

-- Every score answered: what was asked, what was answered, by which model and policy versions.
CREATE TABLE scores (
    score_id TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    model_version TEXT,
    policy_version TEXT NOT NULL,
    source TEXT NOT NULL,
    risk_band TEXT NOT NULL,
    delay_risk DOUBLE PRECISION NOT NULL,
    queue TEXT NOT NULL,
    requires_approval INTEGER NOT NULL,
    degraded INTEGER NOT NULL,
    latency_us BIGINT NOT NULL,
    api_key_id TEXT
);
CREATE INDEX scores_by_shipment ON scores (shipment_id, created_at);

-- Delivery outcomes reported by workflows: retraining data and live history.
CREATE TABLE outcomes (
    shipment_id TEXT PRIMARY KEY,
    score_id TEXT,
    delivered_at TEXT NOT NULL,
    notes TEXT,
    carrier TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    destination TEXT NOT NULL,
    scheduled_date TEXT NOT NULL,
    date_deadline TEXT NOT NULL,
    late INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    api_key_id TEXT
);

-- Responses kept for repeated requests with the same Idempotency-Key (per API key).
CREATE TABLE idempotency (
    key_owner TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    route TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (key_owner, idempotency_key)
);

-- API keys: only the SHA-256 of each key is stored.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
