-- The first position of a partition. A concurrent first writer makes this insert nothing.
INSERT INTO feed_positions (reader, source, partition_id, position, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (reader, source, partition_id) DO NOTHING
