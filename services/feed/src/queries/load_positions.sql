-- Every partition's resume position of one reader and source.
SELECT partition_id, position
FROM feed_positions
WHERE reader = $1 AND source = $2
