begin isolation level serializable;

LOCK TABLE "wh".shard_checkpoint, "wh".stream_gap;


SELECT stream, shard_id, sequence_number, shard_end, updated_at, lease_token, COALESCE(owner, ''), stream_identity
FROM "wh".shard_checkpoint
WHERE stream = $1 AND shard_id = $2;

INSERT INTO "wh".shard_checkpoint (stream, shard_id, sequence_number, shard_end, lease_token, owner, updated_at, stream_identity)
VALUES ($1, $2, '', false, $3, $4, $5, $6);


SELECT stream, shard_id, sequence_number, shard_end, updated_at, lease_token, COALESCE(owner, ''), stream_identity
FROM "wh".shard_checkpoint
WHERE stream = $1 AND shard_id = $2;

commit;
