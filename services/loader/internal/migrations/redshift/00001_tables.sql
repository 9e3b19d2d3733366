-- The warehouse tables on Amazon Redshift, in the shape the PostgreSQL migrations
-- (../sql/00001..00010) give them: the same tables, the same column names in the same order,
-- the same meaning. What differs, and why, is in README.md beside this file; in short:
--
--   * Types Redshift has, with lengths spelled out in bytes (Redshift's TEXT is VARCHAR(256)
--     and its VARCHAR(n) counts bytes, not characters). The bounds are the loader's own
--     (warehouse.MaxKeyText 256, MaxDetailText 8192, MaxRowText 1024; statevent's 512-character
--     retraction reason, up to 2048 bytes of UTF-8; a Kinesis record of at most 1 MiB).
--   * No CHECK, UNIQUE, PRIMARY KEY or FOREIGN KEY constraint: Redshift has no CHECK and
--     enforces no key. The key of each table is named in its comment; the loader's MERGE and
--     INSERT ... WHERE NOT EXISTS keep it unique, and nothing relies on a declared key.
--   * No index (Redshift has none): distribution and sort keys instead.
--   * Defaults use SYSDATE (the transaction's start, in UTC), as now() does on PostgreSQL:
--     Redshift runs now() on the leader node only, so a default of now() fails in an
--     INSERT ... SELECT that reads a table.
--   * Surrogate ids (dead_letter.id, stream_gap.id) are IDENTITY columns: unique, increasing
--     within a load, but not consecutive and not ordered across concurrent loads.

-- +goose Up

-- dim_player: one row per player_id (the key). Small and joined by every view: a copy on
-- every node.
CREATE TABLE dim_player (
    player_id      BIGINT         NOT NULL,
    name           VARCHAR(1024)  NOT NULL,
    team           VARCHAR(1024)  NOT NULL,
    last_game_date DATE           NOT NULL,
    updated_at     TIMESTAMPTZ    NOT NULL
)
DISTSTYLE ALL
SORTKEY (player_id);

-- fact_batting_game: one row per (player_id, game_id) (the key, kept by the loader's MERGE).
-- Distributed by player so that a player's season (every view partitions by player) and the
-- MERGE's join on the key stay on one slice; sorted by date for the report's range scans.
-- The counting stats are never negative: checked by the transformer and the loader, as
-- Redshift has no CHECK constraint.
CREATE TABLE fact_batting_game (
    player_id               BIGINT         NOT NULL,
    game_id                 VARCHAR(1024)  NOT NULL,
    game_date               DATE           NOT NULL,
    game_number             SMALLINT       NOT NULL,
    season                  SMALLINT       NOT NULL,
    opponent                VARCHAR(1024)  NOT NULL,
    home                    BOOLEAN        NOT NULL,
    plate_appearances       INTEGER        NOT NULL,
    at_bats                 INTEGER        NOT NULL,
    runs                    INTEGER        NOT NULL,
    hits                    INTEGER        NOT NULL,
    singles                 INTEGER        NOT NULL,
    doubles                 INTEGER        NOT NULL,
    triples                 INTEGER        NOT NULL,
    home_runs               INTEGER        NOT NULL,
    rbi                     INTEGER        NOT NULL,
    base_on_balls           INTEGER        NOT NULL,
    intentional_walks       INTEGER        NOT NULL,
    strike_outs             INTEGER        NOT NULL,
    hit_by_pitch            INTEGER        NOT NULL,
    sac_bunts               INTEGER        NOT NULL,
    sac_flies               INTEGER        NOT NULL,
    stolen_bases            INTEGER        NOT NULL,
    caught_stealing         INTEGER        NOT NULL,
    ground_into_double_play INTEGER        NOT NULL,
    total_bases             INTEGER        NOT NULL,
    extra_base_hits         INTEGER        NOT NULL,
    times_on_base           INTEGER        NOT NULL,
    event_id                VARCHAR(1024)  NOT NULL,
    version                 BIGINT         NOT NULL,
    source_time             TIMESTAMPTZ    NULL,
    accepted_at             TIMESTAMPTZ    NULL,
    loaded_at               TIMESTAMPTZ    NOT NULL DEFAULT SYSDATE,
    source_stream           VARCHAR(1024)  NULL,
    source_shard_id         VARCHAR(1024)  NULL,
    source_sequence_number  VARCHAR(1024)  NULL,
    trace_id                VARCHAR(1024)  NULL,
    producer                VARCHAR(1024)  NULL
)
DISTKEY (player_id)
SORTKEY (game_date);

-- dead_letter: one row per refused record. Its two dedupe keys of PostgreSQL (the position
-- (stream, shard_id, sequence_number, stage), and (event_id, event_version, stage, reason)
-- when both are known) are kept by the loader's INSERT ... WHERE NOT EXISTS. payload holds
-- the record's bytes (a Kinesis record is at most 1 MiB). Sorted by creation time: the CLI
-- lists by time and the retention deletes by it.
CREATE TABLE dead_letter (
    id                   BIGINT           IDENTITY(1, 1) NOT NULL,
    stage                VARCHAR(256)     NOT NULL,
    reason               VARCHAR(256)     NOT NULL,
    detail               VARCHAR(8192)    NULL,
    field                VARCHAR(256)     NULL,
    event_id             VARCHAR(256)     NULL,
    stream               VARCHAR(256)     NOT NULL,
    shard_id             VARCHAR(256)     NOT NULL,
    sequence_number      VARCHAR(256)     NOT NULL,
    payload              VARBYTE(1048576) NULL,
    created_at           TIMESTAMPTZ      NOT NULL DEFAULT SYSDATE,
    event_version        BIGINT           NULL,
    player_id            BIGINT           NULL,
    game_id              VARCHAR(256)     NULL,
    payload_indexed      BOOLEAN          NOT NULL DEFAULT false,
    replayed_at          TIMESTAMPTZ      NULL,
    replay_event_id      VARCHAR(1024)    NULL,
    replay_event_version BIGINT           NULL,
    producer             VARCHAR(256)     NULL
)
DISTSTYLE EVEN
SORTKEY (created_at);

-- shard_checkpoint: one row per (stream, shard_id) (the key), with the fencing token of the
-- lease (lease_token, owner) and the identity of the stream the position belongs to. A few
-- hundred rows, written by every load.
CREATE TABLE shard_checkpoint (
    stream          VARCHAR(256)   NOT NULL,
    shard_id        VARCHAR(256)   NOT NULL,
    sequence_number VARCHAR(256)   NOT NULL,
    shard_end       BOOLEAN        NOT NULL DEFAULT false,
    consumer_id     VARCHAR(1024)  NULL,
    updated_at      TIMESTAMPTZ    NOT NULL DEFAULT SYSDATE,
    lease_token     BIGINT         NOT NULL DEFAULT 0,
    owner           VARCHAR(1024)  NULL,
    stream_identity VARCHAR(2048)  NOT NULL DEFAULT ''
)
DISTSTYLE EVEN
SORTKEY (stream, shard_id);

-- stream_gap: every range of a shard that was not read, with why (reason is 'trim_horizon'
-- or 'stream_recreated', checked by the loader).
CREATE TABLE stream_gap (
    id                     BIGINT         IDENTITY(1, 1) NOT NULL,
    stream                 VARCHAR(256)   NOT NULL,
    shard_id               VARCHAR(256)   NOT NULL,
    reason                 VARCHAR(64)    NOT NULL,
    after_sequence_number  VARCHAR(256)   NOT NULL,
    before_sequence_number VARCHAR(256)   NOT NULL DEFAULT '',
    old_stream_identity    VARCHAR(2048)  NOT NULL DEFAULT '',
    stream_identity        VARCHAR(2048)  NOT NULL DEFAULT '',
    old_shard_end          BOOLEAN        NOT NULL DEFAULT false,
    old_updated_at         TIMESTAMPTZ    NULL,
    consumer_id            VARCHAR(1024)  NULL,
    detail                 VARCHAR(8192)  NULL,
    created_at             TIMESTAMPTZ    NOT NULL DEFAULT SYSDATE
)
DISTSTYLE EVEN
SORTKEY (stream, shard_id, created_at);

-- batting_game_retraction: one tombstone per (player_id, game_id) (the key), version > 0
-- (checked by the transformer). Distributed like the fact table, which it is joined to on
-- the key at every load.
CREATE TABLE batting_game_retraction (
    player_id              BIGINT         NOT NULL,
    game_id                VARCHAR(1024)  NOT NULL,
    version                BIGINT         NOT NULL,
    event_id               VARCHAR(1024)  NOT NULL,
    producer               VARCHAR(1024)  NULL,
    reason                 VARCHAR(2048)  NOT NULL,
    removed_event_id       VARCHAR(1024)  NULL,
    removed_version        BIGINT         NULL,
    source_time            TIMESTAMPTZ    NULL,
    accepted_at            TIMESTAMPTZ    NULL,
    retracted_at           TIMESTAMPTZ    NOT NULL DEFAULT SYSDATE,
    source_stream          VARCHAR(1024)  NULL,
    source_shard_id        VARCHAR(1024)  NULL,
    source_sequence_number VARCHAR(1024)  NULL,
    trace_id               VARCHAR(1024)  NULL
)
DISTKEY (player_id)
SORTKEY (player_id, game_id);

-- +goose Down
DROP TABLE batting_game_retraction;
DROP TABLE stream_gap;
DROP TABLE shard_checkpoint;
DROP TABLE dead_letter;
DROP TABLE fact_batting_game;
DROP TABLE dim_player;
