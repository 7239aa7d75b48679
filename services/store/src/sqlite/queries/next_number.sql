INSERT INTO dossier_code_sequences (agency_id, day, last_number)
VALUES (?1, ?2, 1)
ON CONFLICT (agency_id, day) DO UPDATE SET last_number = last_number + 1
RETURNING last_number
