-- One partition's resume position.
SELECT position
FROM feed_positions
WHERE reader = $1 AND source = $2 AND partition_id = $3
