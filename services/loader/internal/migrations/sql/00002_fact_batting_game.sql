-- fact_batting_game has one row per player and game: the latest version of the batting
-- line. Counting stats are NOT NULL and never negative: the CHECKs are the last line of
-- defence behind the transformer's validation. No foreign key to dim_player: the warehouse
-- target (Redshift) does not enforce them, and the loader writes both in one transaction.

-- +goose Up
CREATE TABLE fact_batting_game (
    player_id               bigint      NOT NULL,
    game_id                 text        NOT NULL,
    game_date               date        NOT NULL,
    game_number             smallint    NOT NULL CHECK (game_number >= 0),
    season                  smallint    NOT NULL,
    opponent                text        NOT NULL,
    home                    boolean     NOT NULL,
    plate_appearances       integer     NOT NULL CHECK (plate_appearances >= 0),
    at_bats                 integer     NOT NULL CHECK (at_bats >= 0),
    runs                    integer     NOT NULL CHECK (runs >= 0),
    hits                    integer     NOT NULL CHECK (hits >= 0),
    singles                 integer     NOT NULL CHECK (singles >= 0),
    doubles                 integer     NOT NULL CHECK (doubles >= 0),
    triples                 integer     NOT NULL CHECK (triples >= 0),
    home_runs               integer     NOT NULL CHECK (home_runs >= 0),
    rbi                     integer     NOT NULL CHECK (rbi >= 0),
    base_on_balls           integer     NOT NULL CHECK (base_on_balls >= 0),
    intentional_walks       integer     NOT NULL CHECK (intentional_walks >= 0),
    strike_outs             integer     NOT NULL CHECK (strike_outs >= 0),
    hit_by_pitch            integer     NOT NULL CHECK (hit_by_pitch >= 0),
    sac_bunts               integer     NOT NULL CHECK (sac_bunts >= 0),
    sac_flies               integer     NOT NULL CHECK (sac_flies >= 0),
    stolen_bases            integer     NOT NULL CHECK (stolen_bases >= 0),
    caught_stealing         integer     NOT NULL CHECK (caught_stealing >= 0),
    ground_into_double_play integer     NOT NULL CHECK (ground_into_double_play >= 0),
    total_bases             integer     NOT NULL CHECK (total_bases >= 0),
    extra_base_hits         integer     NOT NULL CHECK (extra_base_hits >= 0),
    times_on_base           integer     NOT NULL CHECK (times_on_base >= 0),
    event_id                text        NOT NULL,
    version                 bigint      NOT NULL,
    source_time             timestamptz NULL,
    accepted_at             timestamptz NULL,
    loaded_at               timestamptz NOT NULL DEFAULT now(),
    source_stream           text        NULL,
    source_shard_id         text        NULL,
    source_sequence_number  text        NULL,
    trace_id                text        NULL,
    PRIMARY KEY (player_id, game_id)
);

-- +goose Down
DROP TABLE fact_batting_game;
