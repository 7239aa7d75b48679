-- One statement, so concurrent callers for the same agency and day queue on the row lock and
-- each gets the next number.
INSERT INTO dossier_code_sequences (agency_id, day, last_number)
VALUES ($1, $2, 1)
ON CONFLICT (agency_id, day) DO UPDATE
    SET last_number = dossier_code_sequences.last_number + 1
RETURNING last_number
