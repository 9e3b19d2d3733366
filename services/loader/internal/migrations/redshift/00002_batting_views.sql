-- The season model on Amazon Redshift: batting_season, batting_cumulative and
-- batting_rolling, the same three views as ../sql/00005_batting_views.sql (read its header
-- for what each row is and how the rates are computed), over the Redshift tables of
-- 00001_tables.sql. Same names, same columns, same results: a test loads the same rows into
-- both schemas and compares every view row for row.
--
-- Written in the SQL Redshift accepts (and PostgreSQL too, unchanged: redshifttest rewrites
-- nothing in this file):
--   * every ordered aggregate window has an explicit ROWS frame (Redshift requires one for
--     SUM/COUNT with ORDER BY, and has no RANGE frame with an offset): cumulative totals are
--     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW, the 7- and 15-game windows ROWS
--     BETWEEN 6 (14) PRECEDING AND CURRENT ROW;
--   * no named WINDOW clause, no FILTER clause, no DISTINCT ON, no LATERAL, no
--     generate_series: the rolling view is long (one row per window size) through UNION ALL
--     of constant sizes;
--   * NULLIF for zero denominators and CAST(... AS NUMERIC(18, 6)) before dividing (integer
--     division truncates on both), CAST rather than ::, ROUND(x, 3) into NUMERIC(4, 3);
--   * views bound to their tables (no WITH NO SCHEMA BINDING): a table cannot be dropped
--     under a view, and the Down section drops the views first.

-- +goose Up
CREATE VIEW batting_season AS
WITH totals AS (
    SELECT
        f.player_id,
        f.season,
        COUNT(*)                         AS games,
        SUM(f.plate_appearances)         AS plate_appearances,
        SUM(f.at_bats)                   AS at_bats,
        SUM(f.runs)                      AS runs,
        SUM(f.hits)                      AS hits,
        SUM(f.doubles)                   AS doubles,
        SUM(f.triples)                   AS triples,
        SUM(f.home_runs)                 AS home_runs,
        SUM(f.rbi)                       AS rbi,
        SUM(f.base_on_balls)             AS base_on_balls,
        SUM(f.intentional_walks)         AS intentional_walks,
        SUM(f.strike_outs)               AS strike_outs,
        SUM(f.hit_by_pitch)              AS hit_by_pitch,
        SUM(f.sac_bunts)                 AS sac_bunts,
        SUM(f.sac_flies)                 AS sac_flies,
        SUM(f.stolen_bases)              AS stolen_bases,
        SUM(f.caught_stealing)           AS caught_stealing,
        SUM(f.ground_into_double_play)   AS ground_into_double_play,
        SUM(f.total_bases)               AS total_bases,
        MIN(f.game_date)                 AS first_game_date,
        MAX(f.game_date)                 AS last_game_date
    FROM fact_batting_game AS f
    GROUP BY f.player_id, f.season
)
SELECT
    t.player_id,
    p.name,
    p.team,
    t.season,
    t.games,
    t.plate_appearances,
    t.at_bats,
    t.runs,
    t.hits,
    t.doubles,
    t.triples,
    t.home_runs,
    t.rbi,
    t.base_on_balls,
    t.intentional_walks,
    t.strike_outs,
    t.hit_by_pitch,
    t.sac_bunts,
    t.sac_flies,
    t.stolen_bases,
    t.caught_stealing,
    t.ground_into_double_play,
    t.total_bases,
    CAST(ROUND(CAST(t.hits AS NUMERIC(18, 6)) / NULLIF(t.at_bats, 0), 3) AS NUMERIC(4, 3)) AS avg,
    CAST(ROUND(CAST(t.hits + t.base_on_balls + t.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(t.at_bats + t.base_on_balls + t.hit_by_pitch + t.sac_flies, 0), 3) AS NUMERIC(4, 3)) AS obp,
    CAST(ROUND(CAST(t.total_bases AS NUMERIC(18, 6)) / NULLIF(t.at_bats, 0), 3) AS NUMERIC(4, 3)) AS slg,
    CAST(ROUND(CAST(t.hits + t.base_on_balls + t.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(t.at_bats + t.base_on_balls + t.hit_by_pitch + t.sac_flies, 0)
               + CAST(t.total_bases AS NUMERIC(18, 6)) / NULLIF(t.at_bats, 0), 3) AS NUMERIC(4, 3)) AS ops,
    t.first_game_date,
    t.last_game_date
FROM totals AS t
LEFT JOIN dim_player AS p ON p.player_id = t.player_id;

-- games is the number of games played so far this season, this one included.
CREATE VIEW batting_cumulative AS
WITH running AS (
    SELECT
        f.player_id,
        f.season,
        f.game_id,
        f.game_date,
        f.game_number,
        ROW_NUMBER() OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id) AS games,
        SUM(f.plate_appearances)       OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS plate_appearances,
        SUM(f.at_bats)                 OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS at_bats,
        SUM(f.runs)                    OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS runs,
        SUM(f.hits)                    OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS hits,
        SUM(f.doubles)                 OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS doubles,
        SUM(f.triples)                 OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS triples,
        SUM(f.home_runs)               OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS home_runs,
        SUM(f.rbi)                     OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rbi,
        SUM(f.base_on_balls)           OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS base_on_balls,
        SUM(f.intentional_walks)       OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS intentional_walks,
        SUM(f.strike_outs)             OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS strike_outs,
        SUM(f.hit_by_pitch)            OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS hit_by_pitch,
        SUM(f.sac_bunts)               OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sac_bunts,
        SUM(f.sac_flies)               OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sac_flies,
        SUM(f.stolen_bases)            OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS stolen_bases,
        SUM(f.caught_stealing)         OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS caught_stealing,
        SUM(f.ground_into_double_play) OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS ground_into_double_play,
        SUM(f.total_bases)             OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total_bases
    FROM fact_batting_game AS f
)
SELECT
    r.player_id,
    p.name,
    p.team,
    r.season,
    r.game_id,
    r.game_date,
    r.game_number,
    r.games,
    r.plate_appearances,
    r.at_bats,
    r.runs,
    r.hits,
    r.doubles,
    r.triples,
    r.home_runs,
    r.rbi,
    r.base_on_balls,
    r.intentional_walks,
    r.strike_outs,
    r.hit_by_pitch,
    r.sac_bunts,
    r.sac_flies,
    r.stolen_bases,
    r.caught_stealing,
    r.ground_into_double_play,
    r.total_bases,
    CAST(ROUND(CAST(r.hits AS NUMERIC(18, 6)) / NULLIF(r.at_bats, 0), 3) AS NUMERIC(4, 3)) AS avg,
    CAST(ROUND(CAST(r.hits + r.base_on_balls + r.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(r.at_bats + r.base_on_balls + r.hit_by_pitch + r.sac_flies, 0), 3) AS NUMERIC(4, 3)) AS obp,
    CAST(ROUND(CAST(r.total_bases AS NUMERIC(18, 6)) / NULLIF(r.at_bats, 0), 3) AS NUMERIC(4, 3)) AS slg,
    CAST(ROUND(CAST(r.hits + r.base_on_balls + r.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(r.at_bats + r.base_on_balls + r.hit_by_pitch + r.sac_flies, 0)
               + CAST(r.total_bases AS NUMERIC(18, 6)) / NULLIF(r.at_bats, 0), 3) AS NUMERIC(4, 3)) AS ops
FROM running AS r
LEFT JOIN dim_player AS p ON p.player_id = r.player_id;

-- batting_rolling is long, not wide: each game has one row per window size, told apart by
-- window_games (7 or 15), so "last 7 games" is WHERE window_games = 7 and both sizes share
-- one set of column names. A window frame's size must be a constant, so each size has its
-- own sums below; adding a size means another set of sums and another UNION ALL branch.
-- games_in_window is how many games the window actually holds: fewer than window_games over
-- a player's first games of the season (filter on games_in_window = window_games to keep
-- full windows only).
CREATE VIEW batting_rolling AS
WITH sums AS (
    SELECT
        f.player_id,
        f.season,
        f.game_id,
        f.game_date,
        f.game_number,
        COUNT(*)                 OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS games_7,
        SUM(f.plate_appearances) OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS plate_appearances_7,
        SUM(f.at_bats)           OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS at_bats_7,
        SUM(f.hits)              OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS hits_7,
        SUM(f.home_runs)         OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS home_runs_7,
        SUM(f.rbi)               OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS rbi_7,
        SUM(f.base_on_balls)     OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS base_on_balls_7,
        SUM(f.strike_outs)       OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS strike_outs_7,
        SUM(f.hit_by_pitch)      OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS hit_by_pitch_7,
        SUM(f.sac_flies)         OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS sac_flies_7,
        SUM(f.total_bases)       OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS total_bases_7,
        COUNT(*)                 OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS games_15,
        SUM(f.plate_appearances) OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS plate_appearances_15,
        SUM(f.at_bats)           OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS at_bats_15,
        SUM(f.hits)              OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS hits_15,
        SUM(f.home_runs)         OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS home_runs_15,
        SUM(f.rbi)               OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS rbi_15,
        SUM(f.base_on_balls)     OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS base_on_balls_15,
        SUM(f.strike_outs)       OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS strike_outs_15,
        SUM(f.hit_by_pitch)      OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS hit_by_pitch_15,
        SUM(f.sac_flies)         OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS sac_flies_15,
        SUM(f.total_bases)       OVER (PARTITION BY f.player_id, f.season ORDER BY f.game_date, f.game_number, f.game_id ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS total_bases_15
    FROM fact_batting_game AS f
),
windows AS (
    SELECT player_id, season, game_id, game_date, game_number,
           7 AS window_games, games_7 AS games_in_window,
           plate_appearances_7 AS plate_appearances, at_bats_7 AS at_bats, hits_7 AS hits,
           home_runs_7 AS home_runs, rbi_7 AS rbi, base_on_balls_7 AS base_on_balls,
           strike_outs_7 AS strike_outs, hit_by_pitch_7 AS hit_by_pitch,
           sac_flies_7 AS sac_flies, total_bases_7 AS total_bases
    FROM sums
    UNION ALL
    SELECT player_id, season, game_id, game_date, game_number,
           15 AS window_games, games_15 AS games_in_window,
           plate_appearances_15, at_bats_15, hits_15,
           home_runs_15, rbi_15, base_on_balls_15,
           strike_outs_15, hit_by_pitch_15,
           sac_flies_15, total_bases_15
    FROM sums
)
SELECT
    w.player_id,
    p.name,
    p.team,
    w.season,
    w.game_id,
    w.game_date,
    w.game_number,
    w.window_games,
    w.games_in_window,
    w.plate_appearances,
    w.at_bats,
    w.hits,
    w.home_runs,
    w.rbi,
    w.base_on_balls,
    w.strike_outs,
    w.hit_by_pitch,
    w.sac_flies,
    w.total_bases,
    CAST(ROUND(CAST(w.hits AS NUMERIC(18, 6)) / NULLIF(w.at_bats, 0), 3) AS NUMERIC(4, 3)) AS avg,
    CAST(ROUND(CAST(w.hits + w.base_on_balls + w.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(w.at_bats + w.base_on_balls + w.hit_by_pitch + w.sac_flies, 0), 3) AS NUMERIC(4, 3)) AS obp,
    CAST(ROUND(CAST(w.total_bases AS NUMERIC(18, 6)) / NULLIF(w.at_bats, 0), 3) AS NUMERIC(4, 3)) AS slg,
    CAST(ROUND(CAST(w.hits + w.base_on_balls + w.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(w.at_bats + w.base_on_balls + w.hit_by_pitch + w.sac_flies, 0)
               + CAST(w.total_bases AS NUMERIC(18, 6)) / NULLIF(w.at_bats, 0), 3) AS NUMERIC(4, 3)) AS ops
FROM windows AS w
LEFT JOIN dim_player AS p ON p.player_id = w.player_id;

-- +goose Down
DROP VIEW batting_rolling;
DROP VIEW batting_cumulative;
DROP VIEW batting_season;
