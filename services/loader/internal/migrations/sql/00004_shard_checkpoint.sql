-- shard_checkpoint is the position up to which each shard is committed to the warehouse.
-- It is written in the same transaction as the rows it covers (compare-and-set on
-- sequence_number), so the data and the position never disagree.

-- +goose Up
CREATE TABLE shard_checkpoint (
    stream          text        NOT NULL,
    shard_id        text        NOT NULL,
    sequence_number text        NOT NULL,
    shard_end       boolean     NOT NULL DEFAULT false,
    consumer_id     text        NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, shard_id)
);

-- +goose Down
DROP TABLE shard_checkpoint;
