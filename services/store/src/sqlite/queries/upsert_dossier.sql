INSERT INTO dossiers (dossier_id, version, status, channel, procedure_code, receiving_unit,
                      competent_authority, due_at, open_due_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (dossier_id) DO UPDATE SET
    version = excluded.version,
    status = excluded.status,
    channel = excluded.channel,
    procedure_code = excluded.procedure_code,
    receiving_unit = excluded.receiving_unit,
    competent_authority = excluded.competent_authority,
    due_at = excluded.due_at,
    open_due_at = excluded.open_due_at,
    updated_at = excluded.updated_at
