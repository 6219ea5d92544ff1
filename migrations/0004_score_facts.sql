-- The facts of the scored shipment that later steps join to its score (an outcome's lateness and
-- lane, an approval's subject), as columns rather than inside the request's JSON: the carrier
-- the risk was scored for, the lane, and the two dates as RFC 3339 text in UTC. NULL in rows
-- written before this migration; `Store::connect` fills them in for each shipment's latest score.
ALTER TABLE scores ADD COLUMN scored_carrier TEXT;
ALTER TABLE scores ADD COLUMN warehouse TEXT;
ALTER TABLE scores ADD COLUMN destination TEXT;
ALTER TABLE scores ADD COLUMN scheduled_date TEXT;
ALTER TABLE scores ADD COLUMN date_deadline TEXT;
