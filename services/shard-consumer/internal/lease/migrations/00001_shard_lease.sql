-- +goose Up
-- One lease per shard of a stream. counter grows by one on every take, renewal and
-- release, and every change is conditional on the counter the worker last saw: that is the
-- fencing. updated_at is for people reading the table; no worker ever compares it with its
-- own clock (expiry is judged by counter changes seen on each worker's monotonic clock).
CREATE TABLE shard_lease (
    stream     text        NOT NULL,
    shard_id   text        NOT NULL,
    owner      text        NULL CHECK (owner <> ''),
    counter    bigint      NOT NULL DEFAULT 0 CHECK (counter >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, shard_id)
);

-- +goose Down
DROP TABLE shard_lease;
