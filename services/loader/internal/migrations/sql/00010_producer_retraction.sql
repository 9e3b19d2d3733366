-- The producer is part of the data, and a line can be retracted.
--
-- fact_batting_game.producer and dead_letter.producer: the authenticated producer that sent
-- the event (the stream envelope's producer: an API key's producer name, an identity
-- provider's subject, or "anonymous" when the gateway runs without authentication). NULL
-- when unknown: rows loaded before this migration, records written before producers were
-- recorded, and dead letters whose record could not be decoded that far.
--
-- batting_game_retraction holds one tombstone per (player, game): the newest retraction
-- that took effect. A retraction takes effect when its (version, event_id) is above both
-- the stored line's and the stored tombstone's; it then deletes the line from
-- fact_batting_game (and so from every view) in the same transaction as the shard's
-- checkpoint, and is recorded here with what it removed. From then on a line is stored only
-- with a (version, event_id) above the tombstone's: an older line arriving late (or
-- redelivered) does not bring the row back, a newer one does (the tombstone stays, as the
-- record of what happened). A redelivered tombstone is not above itself: nothing changes.
-- (version, event_id) compare as in fact_batting_game: event_id byte-wise (COLLATE "C").

-- +goose Up
ALTER TABLE fact_batting_game
    ADD COLUMN producer text NULL;

ALTER TABLE dead_letter
    ADD COLUMN producer text NULL;

CREATE TABLE batting_game_retraction (
    player_id              bigint      NOT NULL,
    game_id                text        NOT NULL,
    version                bigint      NOT NULL CHECK (version > 0),
    event_id               text        NOT NULL,
    producer               text        NULL,
    reason                 text        NOT NULL,
    -- The line the tombstone deleted, NULL when there was none (a retraction may come
    -- before its line, or after an earlier retraction).
    removed_event_id       text        NULL,
    removed_version        bigint      NULL,
    source_time            timestamptz NULL,
    accepted_at            timestamptz NULL,
    retracted_at           timestamptz NOT NULL DEFAULT now(),
    source_stream          text        NULL,
    source_shard_id        text        NULL,
    source_sequence_number text        NULL,
    trace_id               text        NULL,
    PRIMARY KEY (player_id, game_id)
);

-- +goose Down
DROP TABLE batting_game_retraction;

ALTER TABLE dead_letter
    DROP COLUMN producer;

ALTER TABLE fact_batting_game
    DROP COLUMN producer;
