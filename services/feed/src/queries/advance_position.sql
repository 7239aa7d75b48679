-- Compare-and-set: moves the position only from the value this writer started from. Run first
-- in the batch's transaction, so it also takes the row lock that makes a second writer of the
-- same partition wait, then find the position moved and back off.
UPDATE feed_positions
SET position = $4, updated_at = $5
WHERE reader = $1 AND source = $2 AND partition_id = $3 AND position = $6
