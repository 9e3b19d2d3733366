-- dead_letter gains what an operator needs to work with dead letters (`boxscore dlq`):
--
--   player_id, game_id  the player and game of the event, decoded from the payload, so dead
--                       letters can be listed by player. NULL when the payload does not say
--                       (undecodable) or has not been decoded yet: payload_indexed tells
--                       which. `boxscore dlq` decodes and fills the rows not yet indexed
--                       before it queries (the payload is protobuf, which SQL cannot read).
--   replayed_at,        when `boxscore dlq replay` sent the event back through the ingest
--   replay_event_id,    API and the gateway accepted it (202), with the id and the version it
--   replay_event_version was sent with; NULL when never replayed. A replay skips rows already
--                       marked unless forced.
--
-- The indexes serve the CLI's queries (by time, by stage and reason over time, by player
-- over time, the rows not yet decoded) and the loader's retention, which deletes by
-- created_at in small batches.

-- +goose Up
ALTER TABLE dead_letter
    ADD COLUMN player_id            bigint      NULL,
    ADD COLUMN game_id              text        NULL,
    ADD COLUMN payload_indexed      boolean     NOT NULL DEFAULT false,
    ADD COLUMN replayed_at          timestamptz NULL,
    ADD COLUMN replay_event_id      text        NULL,
    ADD COLUMN replay_event_version bigint      NULL;

CREATE INDEX dead_letter_created_at_idx ON dead_letter (created_at);
CREATE INDEX dead_letter_stage_reason_created_at_idx ON dead_letter (stage, reason, created_at);
CREATE INDEX dead_letter_player_created_at_idx ON dead_letter (player_id, created_at)
    WHERE player_id IS NOT NULL;
CREATE INDEX dead_letter_not_indexed_idx ON dead_letter (id)
    WHERE NOT payload_indexed;

-- +goose Down
DROP INDEX dead_letter_not_indexed_idx;
DROP INDEX dead_letter_player_created_at_idx;
DROP INDEX dead_letter_stage_reason_created_at_idx;
DROP INDEX dead_letter_created_at_idx;

ALTER TABLE dead_letter
    DROP COLUMN replay_event_version,
    DROP COLUMN replay_event_id,
    DROP COLUMN replayed_at,
    DROP COLUMN payload_indexed,
    DROP COLUMN game_id,
    DROP COLUMN player_id;
