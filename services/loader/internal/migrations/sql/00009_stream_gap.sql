-- Gaps are never silent.
--
-- shard_checkpoint gains the identity of the stream its sequence number belongs to (the
-- stream's creation time, and its ARN when known; '' for rows from before this migration,
-- adopted by the next claim). A stream deleted and created again under the same name has
-- another identity: a claim that names it does not resume from the old position (which
-- would loop over or skip the new stream's records) but archives it in stream_gap and
-- starts the shard over from its oldest record.
--
-- stream_gap records every range of a shard that was not read, with why:
--   trim_horizon      the checkpoint was older than the shard's oldest record (the records
--                     after after_sequence_number and before before_sequence_number expired
--                     past the retention period unread); written with the batch that
--                     resumes from the oldest record, in its transaction.
--   stream_recreated  the checkpoint belonged to an earlier stream of the same name; the
--                     old checkpoint is archived here (after_sequence_number and the old_* columns), written by the claim
--                     that reset it.

-- +goose Up
ALTER TABLE shard_checkpoint
    ADD COLUMN stream_identity text NOT NULL DEFAULT '';

CREATE TABLE stream_gap (
    id                     bigserial   PRIMARY KEY,
    stream                 text        NOT NULL,
    shard_id               text        NOT NULL,
    reason                 text        NOT NULL CHECK (reason IN ('trim_horizon', 'stream_recreated')),
    after_sequence_number  text        NOT NULL,
    before_sequence_number text        NOT NULL DEFAULT '',
    old_stream_identity    text        NOT NULL DEFAULT '',
    stream_identity        text        NOT NULL DEFAULT '',
    old_shard_end          boolean     NOT NULL DEFAULT false,
    old_updated_at         timestamptz NULL,
    consumer_id            text        NULL,
    detail                 text        NULL,
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX stream_gap_shard_idx ON stream_gap (stream, shard_id, created_at);

-- +goose Down
DROP TABLE stream_gap;

ALTER TABLE shard_checkpoint
    DROP COLUMN stream_identity;
