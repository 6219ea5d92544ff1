-- The latest score of each shipment, kept by the recorder in the transaction that writes the
-- scores: outcomes are joined to it, and the approval queue will list it. It replaces the
-- (shipment_id, created_at) index on scores: when open deliveries are scored again and again,
-- that index's inserts land all over it, and every transaction rewrote most of its pages, which
-- doubled the recorder's cost per row as the table grew. This table holds one row per shipment.
CREATE TABLE latest_scores (
    shipment_id TEXT PRIMARY KEY,
    score_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

INSERT INTO latest_scores (shipment_id, score_id, created_at)
SELECT s.shipment_id, s.score_id, s.created_at
FROM scores s
WHERE NOT EXISTS (
    SELECT 1 FROM scores t
    WHERE t.shipment_id = s.shipment_id
      AND (t.created_at > s.created_at OR (t.created_at = s.created_at AND t.score_id > s.score_id))
);

DROP INDEX scores_by_shipment;
