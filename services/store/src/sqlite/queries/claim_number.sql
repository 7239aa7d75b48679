-- A caller-chosen code took this number: the sequence continues after it.
INSERT INTO dossier_code_sequences (agency_id, day, last_number)
VALUES (?1, ?2, ?3)
ON CONFLICT (agency_id, day) DO UPDATE SET last_number = max(last_number, excluded.last_number)
