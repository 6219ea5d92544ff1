-- SQLite only (PostgreSQL keeps its heap and primary-key index): `latest_scores` as a WITHOUT
-- ROWID table, one b-tree keyed by shipment instead of a rowid table plus its primary-key
-- index. Every commit of the recorder upserts its shipments' rows, at places all over the key
-- range: with one tree it dirties half the pages it did, and each dirty page is written to the
-- WAL and synced before the answers it holds are sent.
CREATE TABLE latest_scores_keyed (
    shipment_id TEXT PRIMARY KEY,
    score_id TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO latest_scores_keyed (shipment_id, score_id, created_at)
SELECT shipment_id, score_id, created_at FROM latest_scores;
DROP TABLE latest_scores;
ALTER TABLE latest_scores_keyed RENAME TO latest_scores;
