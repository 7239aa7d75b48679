INSERT INTO personal_data (dossier_id, applicant_name, identity_number, phone)
VALUES ($1, $2, $3, $4)
ON CONFLICT (dossier_id) DO UPDATE SET
    applicant_name = excluded.applicant_name,
    identity_number = excluded.identity_number,
    phone = excluded.phone
