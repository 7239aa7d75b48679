INSERT INTO feed_dead_letters
    (reader, source, partition_id, position, reason, record_key, payload, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
