INSERT INTO events (event_id, dossier_id, seq, event_type, recorded_at, request_id, payload)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
RETURNING position
