-- A reader's dead letters, oldest first.
SELECT source, partition_id, position, reason, record_key, payload
FROM feed_dead_letters
WHERE reader = $1
ORDER BY id
