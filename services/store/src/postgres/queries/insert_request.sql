-- Records a command's request id. A concurrent command with the same id waits here for this
-- transaction and then fails with a unique violation; the store retries it once, and the retry
-- finds this row and replays it.
INSERT INTO requests (request_id, fingerprint, dossier_id, first_seq, last_seq, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6)
