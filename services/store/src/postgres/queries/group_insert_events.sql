-- Appends the group's events in queue order. Runs only while the transaction holds the
-- position lock (taken by an earlier statement, so this statement's snapshot already sees the
-- previous holder's commit): positions continue the head densely and commit in order.
INSERT INTO events (position, event_id, dossier_id, seq, event_type, recorded_at, request_id,
                    payload)
SELECT head.position + e.ord, e.event_id, e.dossier_id, e.seq, e.event_type, e.recorded_at,
       e.request_id, e.payload
FROM (SELECT COALESCE(MAX(position), 0) AS position FROM events) AS head,
     UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[],
            $7::bytea[])
         WITH ORDINALITY AS e (event_id, dossier_id, seq, event_type, recorded_at, request_id,
                               payload, ord)
ORDER BY e.ord
RETURNING event_id, position
