begin isolation level serializable;

LOCK TABLE "wh".shard_checkpoint, "wh".fact_batting_game, "wh".batting_game_retraction, "wh".dim_player, "wh".dead_letter, "wh".stream_gap;

UPDATE "wh".shard_checkpoint
SET sequence_number = $4, shard_end = $5, consumer_id = NULLIF($6, ''), updated_at = $8
WHERE stream = $1 AND shard_id = $2 AND sequence_number = $3 AND lease_token = $7 AND NOT shard_end;


SELECT stream, shard_id, sequence_number, shard_end, updated_at, lease_token, COALESCE(owner, ''), stream_identity
FROM "wh".shard_checkpoint
WHERE stream = $1 AND shard_id = $2;

CREATE TEMP TABLE rs_load_staging (req INTEGER, retraction_reason VARCHAR(2048), player_name VARCHAR(1024), player_team VARCHAR(1024), player_id BIGINT, game_id VARCHAR(1024), game_date DATE, game_number SMALLINT, season SMALLINT, opponent VARCHAR(1024), home BOOLEAN, plate_appearances INTEGER, at_bats INTEGER, runs INTEGER, hits INTEGER, singles INTEGER, doubles INTEGER, triples INTEGER, home_runs INTEGER, rbi INTEGER, base_on_balls INTEGER, intentional_walks INTEGER, strike_outs INTEGER, hit_by_pitch INTEGER, sac_bunts INTEGER, sac_flies INTEGER, stolen_bases INTEGER, caught_stealing INTEGER, ground_into_double_play INTEGER, total_bases INTEGER, extra_base_hits INTEGER, times_on_base INTEGER, event_id VARCHAR(1024), version BIGINT, source_time TIMESTAMPTZ, accepted_at TIMESTAMPTZ, source_stream VARCHAR(1024), source_shard_id VARCHAR(1024), source_sequence_number VARCHAR(1024), trace_id VARCHAR(1024), producer VARCHAR(1024));

SELECT pg_last_copy_count();

CREATE TEMP TABLE rs_load_effective AS
SELECT l.req, l.retraction_reason, l.player_name, l.player_team, l.player_id, l.game_id, l.game_date, l.game_number, l.season, l.opponent, l.home, l.plate_appearances, l.at_bats, l.runs, l.hits, l.singles, l.doubles, l.triples, l.home_runs, l.rbi, l.base_on_balls, l.intentional_walks, l.strike_outs, l.hit_by_pitch, l.sac_bunts, l.sac_flies, l.stolen_bases, l.caught_stealing, l.ground_into_double_play, l.total_bases, l.extra_base_hits, l.times_on_base, l.event_id, l.version, l.source_time, l.accepted_at, l.source_stream, l.source_shard_id, l.source_sequence_number, l.trace_id, l.producer,
    (f.player_id IS NOT NULL) AS line_exists,
    (t.player_id IS NOT NULL) AS tomb_exists,
    CASE WHEN f.player_id IS NULL THEN t.removed_event_id ELSE f.event_id END AS removed_event_id,
    CASE WHEN f.player_id IS NULL THEN t.removed_version ELSE f.version END AS removed_version
FROM (
    SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.player_id, s.game_id ORDER BY s.version DESC, s.event_id DESC) AS rank_in_key
    FROM rs_load_staging s
) l
LEFT JOIN "wh".fact_batting_game f ON f.player_id = l.player_id AND f.game_id = l.game_id
LEFT JOIN "wh".batting_game_retraction t ON t.player_id = l.player_id AND t.game_id = l.game_id
WHERE l.rank_in_key = 1
  AND (f.player_id IS NULL OR l.version > f.version OR (l.version = f.version AND l.event_id > f.event_id))
  AND (t.player_id IS NULL OR l.version > t.version OR (l.version = t.version AND l.event_id > t.event_id));

SELECT req, player_id, game_id, retraction_reason IS NOT NULL, line_exists, tomb_exists
FROM rs_load_effective
ORDER BY player_id, game_id;

CREATE TEMP TABLE rs_load_lines AS SELECT * FROM rs_load_effective WHERE retraction_reason IS NULL;

MERGE INTO "wh".fact_batting_game USING rs_load_lines l
ON fact_batting_game.player_id = l.player_id AND fact_batting_game.game_id = l.game_id
WHEN MATCHED THEN UPDATE SET game_date = l.game_date, game_number = l.game_number, season = l.season, opponent = l.opponent, home = l.home, plate_appearances = l.plate_appearances, at_bats = l.at_bats, runs = l.runs, hits = l.hits, singles = l.singles, doubles = l.doubles, triples = l.triples, home_runs = l.home_runs, rbi = l.rbi, base_on_balls = l.base_on_balls, intentional_walks = l.intentional_walks, strike_outs = l.strike_outs, hit_by_pitch = l.hit_by_pitch, sac_bunts = l.sac_bunts, sac_flies = l.sac_flies, stolen_bases = l.stolen_bases, caught_stealing = l.caught_stealing, ground_into_double_play = l.ground_into_double_play, total_bases = l.total_bases, extra_base_hits = l.extra_base_hits, times_on_base = l.times_on_base, event_id = l.event_id, version = l.version, source_time = l.source_time, accepted_at = l.accepted_at, source_stream = l.source_stream, source_shard_id = l.source_shard_id, source_sequence_number = l.source_sequence_number, trace_id = l.trace_id, producer = l.producer, loaded_at = $1
WHEN NOT MATCHED THEN INSERT (player_id, game_id, game_date, game_number, season, opponent, home, plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi, base_on_balls, intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies, stolen_bases, caught_stealing, ground_into_double_play, total_bases, extra_base_hits, times_on_base, event_id, version, source_time, accepted_at, source_stream, source_shard_id, source_sequence_number, trace_id, producer, loaded_at)
VALUES (l.player_id, l.game_id, l.game_date, l.game_number, l.season, l.opponent, l.home, l.plate_appearances, l.at_bats, l.runs, l.hits, l.singles, l.doubles, l.triples, l.home_runs, l.rbi, l.base_on_balls, l.intentional_walks, l.strike_outs, l.hit_by_pitch, l.sac_bunts, l.sac_flies, l.stolen_bases, l.caught_stealing, l.ground_into_double_play, l.total_bases, l.extra_base_hits, l.times_on_base, l.event_id, l.version, l.source_time, l.accepted_at, l.source_stream, l.source_shard_id, l.source_sequence_number, l.trace_id, l.producer, $1);

DELETE FROM "wh".fact_batting_game USING rs_load_effective e
WHERE fact_batting_game.player_id = e.player_id AND fact_batting_game.game_id = e.game_id AND e.retraction_reason IS NOT NULL;

DELETE FROM "wh".batting_game_retraction USING rs_load_effective e
WHERE batting_game_retraction.player_id = e.player_id AND batting_game_retraction.game_id = e.game_id AND e.retraction_reason IS NOT NULL;

INSERT INTO "wh".batting_game_retraction (player_id, game_id, version, event_id, producer, reason,
    removed_event_id, removed_version, source_time, accepted_at, retracted_at,
    source_stream, source_shard_id, source_sequence_number, trace_id)
SELECT player_id, game_id, version, event_id, producer, retraction_reason,
    removed_event_id, removed_version, source_time, accepted_at, $1,
    source_stream, source_shard_id, source_sequence_number, trace_id
FROM rs_load_effective
WHERE retraction_reason IS NOT NULL;

CREATE TEMP TABLE rs_load_players AS
SELECT player_id, player_name AS name, player_team AS team, game_date AS last_game_date
FROM (
    SELECT player_id, player_name, player_team, game_date,
        ROW_NUMBER() OVER (PARTITION BY player_id ORDER BY game_date DESC, game_number DESC, version DESC, event_id DESC) AS rank_in_player
    FROM rs_load_lines
) p
WHERE rank_in_player = 1;

UPDATE "wh".dim_player
SET name = p.name, team = p.team, last_game_date = p.last_game_date, updated_at = $1
FROM rs_load_players p
WHERE dim_player.player_id = p.player_id AND p.last_game_date >= dim_player.last_game_date
  AND (p.name <> dim_player.name OR p.team <> dim_player.team OR p.last_game_date <> dim_player.last_game_date);

INSERT INTO "wh".dim_player (player_id, name, team, last_game_date, updated_at)
SELECT p.player_id, p.name, p.team, p.last_game_date, $1
FROM rs_load_players p
WHERE NOT EXISTS (SELECT 1 FROM "wh".dim_player d WHERE d.player_id = p.player_id);

DROP TABLE rs_load_players;

DROP TABLE rs_load_lines;

DROP TABLE rs_load_effective;

DROP TABLE rs_load_staging;

INSERT INTO "wh".dead_letter (stage, reason, detail, field, event_id, event_version, stream, shard_id, sequence_number, payload,
    player_id, game_id, payload_indexed, producer, created_at)
SELECT i.stage, i.reason, i.detail, i.field, i.event_id, i.event_version, i.stream, i.shard_id, i.sequence_number, i.payload,
    i.player_id, i.game_id, true, i.producer, i.created_at
FROM (SELECT CAST($1 AS VARCHAR(256)) AS stage, CAST($2 AS VARCHAR(256)) AS reason, CAST(NULLIF($3, '') AS VARCHAR(8192)) AS detail,
    CAST(NULLIF($4, '') AS VARCHAR(256)) AS field, CAST(NULLIF($5, '') AS VARCHAR(256)) AS event_id, CAST(NULLIF($6, 0) AS BIGINT) AS event_version,
    CAST($7 AS VARCHAR(256)) AS stream, CAST($8 AS VARCHAR(256)) AS shard_id, CAST($9 AS VARCHAR(256)) AS sequence_number,
    from_hex($10) AS payload, CAST($11 AS BIGINT) AS player_id, CAST(NULLIF($12, '') AS VARCHAR(256)) AS game_id,
    CAST(NULLIF($13, '') AS VARCHAR(256)) AS producer, CAST($14 AS TIMESTAMPTZ) AS created_at) i
WHERE NOT EXISTS (SELECT 1 FROM "wh".dead_letter d
        WHERE d.stream = i.stream AND d.shard_id = i.shard_id AND d.sequence_number = i.sequence_number AND d.stage = i.stage)
  AND (i.event_id IS NULL OR i.event_version IS NULL OR NOT EXISTS (SELECT 1 FROM "wh".dead_letter d
        WHERE d.event_id = i.event_id AND d.event_version = i.event_version AND d.stage = i.stage AND d.reason = i.reason));

commit;

COPY rs_load_staging (req, retraction_reason, player_name, player_team, player_id, game_id, game_date, game_number, season, opponent, home, plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi, base_on_balls, intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies, stolen_bases, caught_stealing, ground_into_double_play, total_bases, extra_base_hits, times_on_base, event_id, version, source_time, accepted_at, source_stream, source_shard_id, source_sequence_number, trace_id, producer) FROM 's3://staging/loads/loader-a-2/manifest.json' IAM_ROLE 'arn:aws:iam::123456789012:role/boxscore-redshift-copy' MANIFEST GZIP CSV NULL AS '\000' TIMEFORMAT 'auto' DATEFORMAT 'YYYY-MM-DD';
