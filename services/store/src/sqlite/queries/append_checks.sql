-- Everything an append must know before it writes: the dossier's version and whether the
-- request id was recorded before (and for what).
SELECT
    (SELECT version FROM dossiers WHERE dossier_id = ?1) AS version,
    r.fingerprint AS fingerprint,
    r.dossier_id AS recorded_dossier,
    r.first_seq AS first_seq,
    r.last_seq AS last_seq
FROM (SELECT 1) AS one
LEFT JOIN requests AS r ON r.request_id = ?2
