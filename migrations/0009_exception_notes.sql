-- Exception notes classified for a shipment (`/v1/exceptions/classify` with a `shipment_id`):
-- what the approval's page shows beside the score, and what the dashboard ages per category
-- until a workflow resolves the note or the delivery's outcome arrives. Portable SQL, as 0001.
CREATE TABLE exception_notes (
    id TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    note TEXT NOT NULL,
    category TEXT NOT NULL,
    owner TEXT NOT NULL,
    severity TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    needs_review INTEGER NOT NULL,
    tier TEXT NOT NULL,
    model_version TEXT,
    api_key_id TEXT,
    resolved_at TEXT,
    resolved_by TEXT,
    resolution TEXT
);
CREATE INDEX exception_notes_by_shipment ON exception_notes (shipment_id, created_at);
-- Only the open notes, for the dashboard's aging: resolved ones never enter it.
CREATE INDEX exception_notes_open ON exception_notes (category, created_at)
    WHERE resolved_at IS NULL;
