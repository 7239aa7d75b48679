-- Every row of a group except its events, in one statement (one round trip):
--
-- * `moved`: existing dossiers (rows the group locked FOR UPDATE) move to their new version
--   and summary, one row per dossier (the group's last append to it), only from the version
--   the group read;
-- * `created`: the group's new dossiers. No ON CONFLICT: a dossier created meanwhile by another
--   process (waited for if uncommitted) is a unique violation, and the append is retried;
-- * `recorded`: the request ids. A concurrent command with the same id (another process) makes
--   this wait for it and then fail with a unique violation: the group is rolled back and run
--   again op by op, and the retry finds the recorded request and replays it;
-- * `personal`: one row per dossier (the group's last append carrying personal data for it);
-- * `claimed`: caller-chosen codes took these numbers: each sequence continues after the
--   highest.
--
-- Returns how many dossiers moved.
WITH moved AS (
    UPDATE dossiers SET
        version = d.version,
        status = d.status,
        channel = d.channel,
        procedure_code = d.procedure_code,
        receiving_unit = d.receiving_unit,
        competent_authority = d.competent_authority,
        due_at = d.due_at,
        open_due_at = d.open_due_at,
        updated_at = d.updated_at
    FROM UNNEST($1::text[], $2::bigint[], $3::int4[], $4::int4[], $5::text[], $6::text[],
                $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
                $11::bigint[])
        AS d (dossier_id, version, status, channel, procedure_code, receiving_unit,
              competent_authority, due_at, open_due_at, updated_at, expected)
    WHERE dossiers.dossier_id = d.dossier_id AND dossiers.version = d.expected
    RETURNING 1
), created AS (
    INSERT INTO dossiers (dossier_id, version, status, channel, procedure_code, receiving_unit,
                          competent_authority, due_at, open_due_at, updated_at)
    SELECT * FROM UNNEST($12::text[], $13::bigint[], $14::int4[], $15::int4[], $16::text[],
                         $17::text[], $18::text[], $19::timestamptz[], $20::timestamptz[],
                         $21::timestamptz[])
), recorded AS (
    INSERT INTO requests (request_id, fingerprint, dossier_id, first_seq, last_seq, recorded_at)
    SELECT * FROM UNNEST($22::text[], $23::bytea[], $24::text[], $25::bigint[], $26::bigint[],
                         $27::timestamptz[])
), personal AS (
    INSERT INTO personal_data (dossier_id, applicant_name, identity_number, phone)
    SELECT * FROM UNNEST($28::text[], $29::text[], $30::text[], $31::text[])
    ON CONFLICT (dossier_id) DO UPDATE SET
        applicant_name = excluded.applicant_name,
        identity_number = excluded.identity_number,
        phone = excluded.phone
), claimed AS (
    INSERT INTO dossier_code_sequences (agency_id, day, last_number)
    SELECT c.agency_id, c.day, MAX(c.number)
    FROM UNNEST($32::text[], $33::date[], $34::bigint[]) AS c (agency_id, day, number)
    GROUP BY c.agency_id, c.day
    ON CONFLICT (agency_id, day) DO UPDATE
        SET last_number = GREATEST(dossier_code_sequences.last_number, EXCLUDED.last_number)
)
SELECT COUNT(*) FROM moved
