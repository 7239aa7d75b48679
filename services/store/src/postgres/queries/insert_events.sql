-- Appends one command's events. Runs only while the transaction holds the position lock, so
-- the head read here cannot move before this transaction commits: positions continue the head
-- densely and commit in order. $3..$7 are parallel arrays, one element per event, in seq order.
INSERT INTO events (position, event_id, dossier_id, seq, event_type, recorded_at, request_id,
                    payload)
SELECT head.position + e.ord, e.event_id, $1, e.seq, e.event_type, e.recorded_at, $2, e.payload
FROM (SELECT COALESCE(MAX(position), 0) AS position FROM events) AS head,
     UNNEST($3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::bytea[])
         WITH ORDINALITY AS e (event_id, seq, event_type, recorded_at, payload, ord)
ORDER BY e.ord
RETURNING position, seq
