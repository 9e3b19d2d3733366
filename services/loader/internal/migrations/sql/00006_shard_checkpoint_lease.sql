-- shard_checkpoint gains the fencing token of the lease under which the shard was last
-- claimed (LoadService/ClaimShard), and the claiming consumer. A Load commits only if it
-- carries the stored token, and a claim only raises it: a consumer that lost its lease
-- (paused, partitioned) and comes back can no longer commit.
--
-- A claim creates the row of a shard never committed with sequence_number '' ("nothing
-- committed yet"), so the fence exists before the first batch. 0 is "never claimed": every
-- consumer claims with a positive token, so rows from before this migration are claimed
-- again before anything commits.

-- +goose Up
ALTER TABLE shard_checkpoint
    ADD COLUMN lease_token bigint NOT NULL DEFAULT 0 CHECK (lease_token >= 0),
    ADD COLUMN owner       text   NULL;

-- +goose Down
ALTER TABLE shard_checkpoint
    DROP COLUMN owner,
    DROP COLUMN lease_token;
