-- dead_letter keeps every record the pipeline refused, with its payload so it can be
-- replayed. The unique key on the record's position and stage makes a redelivered
-- rejection a no-op (INSERT ... ON CONFLICT DO NOTHING).

-- +goose Up
CREATE TABLE dead_letter (
    id              bigserial   NOT NULL PRIMARY KEY,
    stage           text        NOT NULL,
    reason          text        NOT NULL,
    detail          text        NULL,
    field           text        NULL,
    event_id        text        NULL,
    stream          text        NOT NULL,
    shard_id        text        NOT NULL,
    sequence_number text        NOT NULL,
    payload         bytea       NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dead_letter_position_stage_key UNIQUE (stream, shard_id, sequence_number, stage)
);

-- +goose Down
DROP TABLE dead_letter;
