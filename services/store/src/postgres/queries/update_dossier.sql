-- A later append: only if the dossier is still at the expected version ($11). The row lock
-- makes a concurrent append on the same dossier wait, then re-check the version and find none.
UPDATE dossiers SET
    version = $2,
    status = $3,
    channel = $4,
    procedure_code = $5,
    receiving_unit = $6,
    competent_authority = $7,
    due_at = $8,
    open_due_at = $9,
    updated_at = $10
WHERE dossier_id = $1 AND version = $11
RETURNING version
