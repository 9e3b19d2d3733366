-- The league report (boxscore report, pkg/seasonview.League) reads fact_batting_game by
-- season and game-date range twice: once to add up each player's lines, once to count each
-- team's distinct games (the (opponent, game_date, game_number) of its opponents' lines).
-- This index serves both: the date range as an index range, and the team games as an
-- index-only scan once the table is vacuumed (every column that part reads is in it).
--
-- Measured with EXPLAIN ANALYZE on a generated season (leaguegen seed 7: 57,210 lines, 575
-- batters) on the 2-core CI machine under load: the whole season 90-220 ms (a sequential
-- scan is the right plan for it), a month 30-45 ms (a bitmap scan of this index instead of
-- a sequential scan that drops 47,000 rows). The chart's per-player reads already use the
-- primary key (player_id, game_id).
--
-- PostgreSQL only: Amazon Redshift has no indexes; there fact_batting_game is sorted by
-- game_date (SORTKEY in redshift/00001), which prunes the date range by zone maps.

-- +goose Up
CREATE INDEX fact_batting_game_season_date_idx
    ON fact_batting_game (season, game_date, opponent, game_number);

-- +goose Down
DROP INDEX fact_batting_game_season_date_idx;
