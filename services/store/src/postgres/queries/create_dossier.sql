-- The first append to a dossier (expected version 0). No row back: the dossier exists, and a
-- concurrent creator that had not committed yet was waited for.
INSERT INTO dossiers (dossier_id, version, status, channel, procedure_code, receiving_unit,
                      competent_authority, due_at, open_due_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (dossier_id) DO NOTHING
RETURNING version
