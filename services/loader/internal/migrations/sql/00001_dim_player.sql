-- dim_player holds the current name and team of every player seen in a fact row.
-- last_game_date remembers which game the name/team came from, so a late-arriving
-- line from an older game (before a trade) does not overwrite the current team.

-- +goose Up
CREATE TABLE dim_player (
    player_id      bigint      NOT NULL PRIMARY KEY,
    name           text        NOT NULL,
    team           text        NOT NULL,
    last_game_date date        NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- +goose Down
DROP TABLE dim_player;
