package warehouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// The statements below name tables as {schema}.table; NewPostgresDialect replaces {schema}
// with the quoted schema name once, so no statement is built per call.

// upsertSavepoint is the savepoint UpsertFacts writes under, so that a refused batch can be
// undone without losing the rest of the transaction.
const upsertSavepoint = "upsert_facts"

// stagingColumnsSQL declares the staging table's columns in postgresStagingColumns' order, with the
// types appendCopyRow encodes (see copy.go): declared here rather than LIKE the fact table,
// so the binary COPY data always matches them. player_name and player_team are not fact
// columns: they carry what dim_player needs, so that upsertFactsAndPlayersSQL writes it in
// the same statement as the facts. It has no constraints: a row the fact table
// refuses (a CHECK, NOT NULL) is refused by the upsert, under the savepoint, and a value no
// text column can hold (NUL, invalid UTF-8) by the COPY, under the same savepoint.
const stagingColumnsSQL = `(
    player_id bigint, game_id text, game_date date, game_number smallint, season smallint, opponent text, home boolean,
    plate_appearances integer, at_bats integer, runs integer, hits integer, singles integer, doubles integer,
    triples integer, home_runs integer, rbi integer, base_on_balls integer, intentional_walks integer,
    strike_outs integer, hit_by_pitch integer, sac_bunts integer, sac_flies integer,
    stolen_bases integer, caught_stealing integer, ground_into_double_play integer,
    total_bases integer, extra_base_hits integer, times_on_base integer,
    event_id text, version bigint, source_time timestamptz, accepted_at timestamptz,
    source_stream text, source_shard_id text, source_sequence_number text, trace_id text, producer text,
    player_name text, player_team text)`

// beginUpsertSQL opens the savepoint and makes sure the session's staging table exists and
// is empty, in one round trip (several statements need the simple protocol, which Exec uses
// when a statement has no arguments).
//
// The staging table is temporary (only this session sees it, so concurrent loads cannot
// collide) and lives as long as the session: created by the first load of a connection,
// emptied by every commit (ON COMMIT DELETE ROWS, a truncation, only in transactions that
// used it) rather than created and dropped by every load, which cost catalog writes and a
// re-planned upsert per load. The DELETE empties it between the upserts of one transaction
// (bisection): rows of an attempt that was undone are gone with the savepoint, but those of
// an attempt that succeeded are still there; on a table truncated by the last commit it
// reads nothing. A table created under a savepoint that is then undone is created again by
// the next attempt.
const beginUpsertSQL = `
SAVEPOINT ` + upsertSavepoint + `;
CREATE TEMP TABLE IF NOT EXISTS fact_batting_game_staging ` + stagingColumnsSQL + ` ON COMMIT DELETE ROWS;
DELETE FROM pg_temp.fact_batting_game_staging`

// releaseUpsertSQL keeps what the savepoint covered; it is sent in the same pipeline as the
// upsert, so the savepoint costs no round trip when nothing is wrong.
const releaseUpsertSQL = `RELEASE SAVEPOINT ` + upsertSavepoint

// undoUpsertSQL undoes everything since the savepoint (the staged rows included) and
// leaves the transaction usable again.
const undoUpsertSQL = `ROLLBACK TO SAVEPOINT ` + upsertSavepoint + `; RELEASE SAVEPOINT ` + upsertSavepoint + `;`

// stagingTable is where COPY FROM STDIN sends the batch.
var stagingTable = pgx.Identifier{"pg_temp", "fact_batting_game_staging"}

// upsertFactsSQL moves the staged rows into the fact table. A stored row is replaced only
// when the incoming (version, event_id) is greater: a redelivered or older line changes
// nothing and is not returned. A row whose (version, event_id) is not above its key's
// tombstone (batting_game_retraction) is left out the same way: a retracted line comes
// back only with a newer version. event_id compares byte-wise (COLLATE "C") so the database and
// the in-batch deduplication agree on the order whatever the database's collation.
// (xmax = 0) is true for a freshly inserted tuple and false for one that ON CONFLICT
// updated: that is how inserted and updated rows are told apart in one statement.
// ORDER BY makes concurrent loads lock keys in the same order, which avoids deadlocks.
// upsertFactsSQL and upsertFactsAndPlayersSQL add what they return.
const insertFactsBodySQL = `
INSERT INTO {schema}.fact_batting_game AS f (
    player_id, game_id, game_date, game_number, season, opponent, home,
    plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi,
    base_on_balls, intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies,
    stolen_bases, caught_stealing, ground_into_double_play,
    total_bases, extra_base_hits, times_on_base,
    event_id, version, source_time, accepted_at,
    source_stream, source_shard_id, source_sequence_number, trace_id, producer
)
SELECT
    player_id, game_id, game_date, game_number, season, opponent, home,
    plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi,
    base_on_balls, intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies,
    stolen_bases, caught_stealing, ground_into_double_play,
    total_bases, extra_base_hits, times_on_base,
    event_id, version, source_time, accepted_at,
    source_stream, source_shard_id, source_sequence_number, trace_id, producer
FROM pg_temp.fact_batting_game_staging s
WHERE NOT EXISTS (
    SELECT 1 FROM {schema}.batting_game_retraction t
    WHERE t.player_id = s.player_id AND t.game_id = s.game_id
      AND (t.version, t.event_id COLLATE "C") >= (s.version, s.event_id COLLATE "C"))
ORDER BY player_id, game_id`

// onConflictSQL is what makes insertFactsBodySQL an upsert (upsertFactsBodySQL): the
// version rule against a stored row.
const onConflictSQL = `
ON CONFLICT (player_id, game_id) DO UPDATE SET
    game_date = EXCLUDED.game_date,
    game_number = EXCLUDED.game_number,
    season = EXCLUDED.season,
    opponent = EXCLUDED.opponent,
    home = EXCLUDED.home,
    plate_appearances = EXCLUDED.plate_appearances,
    at_bats = EXCLUDED.at_bats,
    runs = EXCLUDED.runs,
    hits = EXCLUDED.hits,
    singles = EXCLUDED.singles,
    doubles = EXCLUDED.doubles,
    triples = EXCLUDED.triples,
    home_runs = EXCLUDED.home_runs,
    rbi = EXCLUDED.rbi,
    base_on_balls = EXCLUDED.base_on_balls,
    intentional_walks = EXCLUDED.intentional_walks,
    strike_outs = EXCLUDED.strike_outs,
    hit_by_pitch = EXCLUDED.hit_by_pitch,
    sac_bunts = EXCLUDED.sac_bunts,
    sac_flies = EXCLUDED.sac_flies,
    stolen_bases = EXCLUDED.stolen_bases,
    caught_stealing = EXCLUDED.caught_stealing,
    ground_into_double_play = EXCLUDED.ground_into_double_play,
    total_bases = EXCLUDED.total_bases,
    extra_base_hits = EXCLUDED.extra_base_hits,
    times_on_base = EXCLUDED.times_on_base,
    event_id = EXCLUDED.event_id,
    version = EXCLUDED.version,
    source_time = EXCLUDED.source_time,
    accepted_at = EXCLUDED.accepted_at,
    loaded_at = now(),
    source_stream = EXCLUDED.source_stream,
    source_shard_id = EXCLUDED.source_shard_id,
    source_sequence_number = EXCLUDED.source_sequence_number,
    trace_id = EXCLUDED.trace_id,
    producer = EXCLUDED.producer
WHERE (EXCLUDED.version, EXCLUDED.event_id COLLATE "C") > (f.version, f.event_id COLLATE "C")`

// upsertFactsBodySQL is the upsert of the staged rows: insertFactsBodySQL with the version
// rule for the keys already stored.
const upsertFactsBodySQL = insertFactsBodySQL + onConflictSQL

// upsertFactsSQL moves the staged rows into the fact table (upsertFactsBodySQL) and returns
// the keys written.
const upsertFactsSQL = upsertFactsBodySQL + `
RETURNING f.player_id, f.game_id, (f.xmax = 0) AS inserted`

// upsertFactsAndPlayersSQL is upsertFactsSQL and upsertPlayersSQL in one statement (a
// data-modifying CTE): dim_player is upserted from the rows the fact upsert returns, so
// only from rows actually written, each player from its latest game among them (date, then
// game number, then version and event id byte-wise: latestPlayers' order), with the name
// and team staged beside the row. It saves the batch a statement, a round trip, and the
// player arrays built and sent by the client. dim_player rows are locked in player order,
// as upsertPlayersSQL locks them.
const upsertFactsAndPlayersSQL = `
WITH written AS (` + upsertFactsBodySQL + writtenAndPlayersSQL

// insertFactsAndPlayersSQL is upsertFactsAndPlayersSQL without ON CONFLICT: a plain INSERT,
// which the pipelined path tries first (see insertOnlyFirst in pipelined.go). A staged key
// already stored fails it with unique_violation (23505) on the primary key, and nothing of
// the transaction is kept.
const insertFactsAndPlayersSQL = `
WITH written AS (` + insertFactsBodySQL + writtenAndPlayersSQL

// writtenAndPlayersSQL ends upsertFactsAndPlayersSQL and insertFactsAndPlayersSQL: what
// the fact statement returns, and dim_player upserted from it.
const writtenAndPlayersSQL = `
    RETURNING f.player_id, f.game_id, f.game_date, f.game_number, f.version, f.event_id, (f.xmax = 0) AS inserted
),
players AS (
    INSERT INTO {schema}.dim_player AS d (player_id, name, team, last_game_date, updated_at)
    SELECT DISTINCT ON (w.player_id) w.player_id, s.player_name, s.player_team, w.game_date, now()
    FROM written w
    JOIN pg_temp.fact_batting_game_staging s ON s.player_id = w.player_id AND s.game_id = w.game_id
    ORDER BY w.player_id, w.game_date DESC, w.game_number DESC, w.version DESC, w.event_id COLLATE "C" DESC
` + upsertPlayersConflictSQL + `
)
SELECT player_id, game_id, inserted FROM written`

// factColumns is the order in which appendCopyRow emits a row for COPY into the staging table.
var factColumns = []string{
	"player_id", "game_id", "game_date", "game_number", "season", "opponent", "home",
	"plate_appearances", "at_bats", "runs", "hits", "singles", "doubles", "triples", "home_runs", "rbi",
	"base_on_balls", "intentional_walks", "strike_outs", "hit_by_pitch", "sac_bunts", "sac_flies",
	"stolen_bases", "caught_stealing", "ground_into_double_play",
	"total_bases", "extra_base_hits", "times_on_base",
	"event_id", "version", "source_time", "accepted_at",
	"source_stream", "source_shard_id", "source_sequence_number", "trace_id", "producer",
}

// postgresStagingColumns is the order in which appendCopyRow emits a row: factColumns, then the
// player's name and team for dim_player.
var postgresStagingColumns = slices.Concat(factColumns, []string{"player_name", "player_team"})

// copyFactsSQL is the COPY that appendCopyData's bytes are sent with.
var copyFactsSQL = "COPY " + stagingTable.Sanitize() + " (" + strings.Join(postgresStagingColumns, ", ") + ") FROM STDIN (FORMAT binary)"

// upsertPlayersSQL records each player's name and team. The stored values win when they
// come from a later game than the incoming ones (a late line from before a trade must not
// bring the old team back); an identical row is left alone so updated_at means a change.
const upsertPlayersSQL = `
INSERT INTO {schema}.dim_player AS d (player_id, name, team, last_game_date, updated_at)
SELECT player_id, name, team, last_game_date, now()
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::date[]) AS p(player_id, name, team, last_game_date)
ORDER BY player_id
` + upsertPlayersConflictSQL

// upsertPlayersConflictSQL is the rule upsertPlayersSQL and upsertFactsAndPlayersSQL
// apply to a stored player (see upsertPlayersSQL).
const upsertPlayersConflictSQL = `ON CONFLICT (player_id) DO UPDATE SET
    name = EXCLUDED.name,
    team = EXCLUDED.team,
    last_game_date = EXCLUDED.last_game_date,
    updated_at = EXCLUDED.updated_at
WHERE EXCLUDED.last_game_date >= d.last_game_date
  AND (EXCLUDED.name, EXCLUDED.team, EXCLUDED.last_game_date) IS DISTINCT FROM (d.name, d.team, d.last_game_date)`

// insertDeadLettersSQL writes rejections. A rejection is skipped when one is already stored
// for the same position and stage (a redelivery: dead_letter_position_stage_key) or for
// the same event id, version, stage and reason (the same event put twice in the stream:
// dead_letter_event_key, migration 00007), so the affected row count is the number of new
// ones. ON CONFLICT without a target skips a conflict on either key, also between two
// letters of the same statement. A version of 0 (unknown) is stored as NULL, which never
// conflicts. The player and game are stored as the letter's Subject says (NULL when it
// names none), with payload_indexed true: `boxscore dlq` has nothing left to decode.
const insertDeadLettersSQL = `
INSERT INTO {schema}.dead_letter (stage, reason, detail, field, event_id, event_version, stream, shard_id, sequence_number, payload,
    player_id, game_id, payload_indexed, producer)
SELECT stage, reason, NULLIF(detail, ''), NULLIF(field, ''), NULLIF(event_id, ''), NULLIF(event_version, 0),
    stream, shard_id, sequence_number, payload,
    CASE WHEN has_player THEN player_id END, NULLIF(game_id, ''), true, NULLIF(producer, '')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bytea[],
        $11::bigint[], $12::bool[], $13::text[], $14::text[])
    AS r(stage, reason, detail, field, event_id, event_version, stream, shard_id, sequence_number, payload,
        player_id, has_player, game_id, producer)
ON CONFLICT DO NOTHING`

// applyRetractionsSQL applies tombstones in one statement. A tombstone takes effect
// (effective) only when its (version, event_id) is above both the stored line's and the
// stored tombstone's, compared as upsertFactsSQL does (event_id byte-wise): a redelivered
// or older tombstone changes nothing. One that takes effect deletes the line (and so its
// rows in every view) and is stored, with the line it removed; a newer tombstone replaces
// an older one, keeping the last line removed when it removed none itself. Each shard's
// loads are serialized by its checkpoint row, and a player's lines and retractions share a
// shard (the partition key is the player), so no other load touches these keys meanwhile.
// ORDER BY makes the insert lock keys in key order, as the upsert does.
const applyRetractionsSQL = `
WITH incoming AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[])
        AS i(player_id, game_id, version, event_id, producer, reason, source_time, accepted_at,
            source_stream, source_shard_id, source_sequence_number, trace_id)
),
effective AS (
    SELECT i.*, f.event_id AS removed_event_id, f.version AS removed_version, (t.player_id IS NOT NULL) AS replaced
    FROM incoming i
    LEFT JOIN {schema}.fact_batting_game f ON f.player_id = i.player_id AND f.game_id = i.game_id
    LEFT JOIN {schema}.batting_game_retraction t ON t.player_id = i.player_id AND t.game_id = i.game_id
    WHERE (f.player_id IS NULL OR (i.version, i.event_id COLLATE "C") > (f.version, f.event_id COLLATE "C"))
      AND (t.player_id IS NULL OR (i.version, i.event_id COLLATE "C") > (t.version, t.event_id COLLATE "C"))
),
removed AS (
    DELETE FROM {schema}.fact_batting_game f
    USING effective e
    WHERE f.player_id = e.player_id AND f.game_id = e.game_id
    RETURNING f.player_id
),
stored AS (
    INSERT INTO {schema}.batting_game_retraction AS t (player_id, game_id, version, event_id, producer, reason,
        removed_event_id, removed_version, source_time, accepted_at,
        source_stream, source_shard_id, source_sequence_number, trace_id)
    SELECT player_id, game_id, version, event_id, producer, reason,
        removed_event_id, removed_version, source_time, accepted_at,
        source_stream, source_shard_id, source_sequence_number, trace_id
    FROM effective
    ORDER BY player_id, game_id
    ON CONFLICT (player_id, game_id) DO UPDATE SET
        version = EXCLUDED.version,
        event_id = EXCLUDED.event_id,
        producer = EXCLUDED.producer,
        reason = EXCLUDED.reason,
        removed_event_id = COALESCE(EXCLUDED.removed_event_id, t.removed_event_id),
        removed_version = CASE WHEN EXCLUDED.removed_event_id IS NULL THEN t.removed_version ELSE EXCLUDED.removed_version END,
        source_time = EXCLUDED.source_time,
        accepted_at = EXCLUDED.accepted_at,
        retracted_at = now(),
        source_stream = EXCLUDED.source_stream,
        source_shard_id = EXCLUDED.source_shard_id,
        source_sequence_number = EXCLUDED.source_sequence_number,
        trace_id = EXCLUDED.trace_id
    RETURNING t.player_id
)
SELECT player_id, game_id, removed_event_id IS NOT NULL AS removed, replaced
FROM effective
ORDER BY player_id, game_id`

// checkpointColumns is what every checkpoint statement returns, in scanCheckpoint's order.
const checkpointColumns = `stream, shard_id, sequence_number, shard_end, updated_at, lease_token, COALESCE(owner, ''), stream_identity`

// claimShardSQL is a claim in one statement: it creates the row of a shard never claimed
// (an empty sequence_number: nothing committed yet) or, on the existing row, stores the token and
// owner only if the token is greater than the stored one, or equal with the same owner (a
// claim retried after its answer was lost). The row lock ON CONFLICT takes serializes
// concurrent claims and loads of the shard. When the condition fails nothing is returned.
// updated_at is left alone on an existing row: it dates the last committed position.
const claimShardSQL = `
INSERT INTO {schema}.shard_checkpoint AS c (stream, shard_id, sequence_number, shard_end, lease_token, owner, updated_at, stream_identity)
VALUES ($1, $2, '', false, $3, $4, now(), $5)
ON CONFLICT (stream, shard_id) DO UPDATE SET
    lease_token = EXCLUDED.lease_token,
    owner = EXCLUDED.owner
WHERE EXCLUDED.lease_token > c.lease_token
   OR (EXCLUDED.lease_token = c.lease_token AND EXCLUDED.owner IS NOT DISTINCT FROM c.owner)
RETURNING ` + checkpointColumns

// advanceCheckpointSQL is the compare-and-set of a load: it hits the row only if it still
// holds the expected sequence number (empty for a shard claimed but never committed), carries
// the load's lease token, and the shard is not closed yet. The row lock it takes makes a
// concurrent load or claim of the same shard wait, then see the new values.
const advanceCheckpointSQL = `
UPDATE {schema}.shard_checkpoint
SET sequence_number = $4, shard_end = $5, consumer_id = NULLIF($6, ''), updated_at = now()
WHERE stream = $1 AND shard_id = $2 AND sequence_number = $3 AND lease_token = $7 AND NOT shard_end
RETURNING ` + checkpointColumns

// setStreamIdentitySQL ties a checkpoint to a stream identity; with $4 it also starts the
// shard over (the old position was archived in stream_gap by the same transaction).
const setStreamIdentitySQL = `
UPDATE {schema}.shard_checkpoint
SET stream_identity = $3,
    sequence_number = CASE WHEN $4 THEN '' ELSE sequence_number END,
    shard_end = CASE WHEN $4 THEN false ELSE shard_end END,
    updated_at = CASE WHEN $4 THEN now() ELSE updated_at END
WHERE stream = $1 AND shard_id = $2
RETURNING ` + checkpointColumns

// insertGapSQL records a range of a shard that was not read.
const insertGapSQL = `
INSERT INTO {schema}.stream_gap (stream, shard_id, reason, after_sequence_number, before_sequence_number,
    old_stream_identity, stream_identity, old_shard_end, old_updated_at, consumer_id, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, ''), NULLIF($11, ''))`

// selectCheckpointSQL reads one shard's checkpoint.
const selectCheckpointSQL = `
SELECT ` + checkpointColumns + `
FROM {schema}.shard_checkpoint
WHERE stream = $1 AND shard_id = $2`

// PostgresDialect writes to PostgreSQL; see Dialect.
type PostgresDialect struct {
	beginUpsert       string
	upsertFacts       string
	upsertWithPlayers string
	insertWithPlayers string
	upsertPlayers     string
	applyRetractions  string
	insertDeadLetters string
	claimShard        string
	advance           string
	advanceOrFail     string
	selectCheckpoint  string
	setIdentity       string
	insertGap         string

	// upsertLoads is how many pipelined loads still use the upsert directly after a key
	// conflict (see insertOnlyFirst in pipelined.go).
	upsertLoads atomic.Int64
}

var _ Dialect = (*PostgresDialect)(nil)

// NewPostgresDialect returns the PostgreSQL dialect for tables in schema.
func NewPostgresDialect(schema string) (*PostgresDialect, error) {
	if err := migrations.ValidateSchema(schema); err != nil {
		return nil, fmt.Errorf("postgres dialect: %w", err)
	}
	r := strings.NewReplacer("{schema}", pgx.Identifier{schema}.Sanitize())
	return &PostgresDialect{
		beginUpsert:       r.Replace(beginUpsertSQL),
		upsertFacts:       r.Replace(upsertFactsSQL),
		upsertWithPlayers: r.Replace(upsertFactsAndPlayersSQL),
		insertWithPlayers: r.Replace(insertFactsAndPlayersSQL),
		upsertPlayers:     r.Replace(upsertPlayersSQL),
		applyRetractions:  r.Replace(applyRetractionsSQL),
		insertDeadLetters: r.Replace(insertDeadLettersSQL),
		claimShard:        r.Replace(claimShardSQL),
		advance:           r.Replace(advanceCheckpointSQL),
		advanceOrFail:     r.Replace(advanceCheckpointOrFailSQL),
		selectCheckpoint:  r.Replace(selectCheckpointSQL),
		setIdentity:       r.Replace(setStreamIdentitySQL),
		insertGap:         r.Replace(insertGapSQL),
	}, nil
}

// ClaimShard implements Dialect.
func (d *PostgresDialect) ClaimShard(ctx context.Context, tx pgx.Tx, c Claim) (Checkpoint, bool, error) {
	stored, err := scanCheckpoint(tx.QueryRow(ctx, d.claimShard, c.Stream, c.ShardID, c.LeaseToken, c.Owner, c.StreamIdentity))
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, false, fmt.Errorf("claim shard: %w", err)
	}
	// Refused: the row exists (the INSERT conflicted) and is locked by this transaction
	// now, so this read sees the values that refused the claim.
	stored, err = d.ReadCheckpoint(ctx, tx, c.Stream, c.ShardID)
	if err != nil {
		return Checkpoint{}, false, err
	}
	return stored, false, nil
}

// AdvanceCheckpoint implements Dialect.
func (d *PostgresDialect) AdvanceCheckpoint(ctx context.Context, tx pgx.Tx, u CheckpointUpdate) (Checkpoint, bool, error) {
	row := tx.QueryRow(ctx, d.advance, u.Stream, u.ShardID, u.Expected, u.SequenceNumber, u.ShardEnd, u.ConsumerID, u.LeaseToken)
	stored, err := scanCheckpoint(row)
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, false, fmt.Errorf("compare-and-set checkpoint: %w", err)
	}
	// No row matched: read what is there instead. Under READ COMMITTED this statement sees
	// the commit that beat us, if one did.
	stored, err = d.ReadCheckpoint(ctx, tx, u.Stream, u.ShardID)
	if err != nil {
		return Checkpoint{}, false, err
	}
	return stored, false, nil
}

// UpsertFacts implements Dialect. The rows are staged with COPY and moved by one upsert,
// under a savepoint: the savepoint and the staging table are made ready in one round trip,
// and the release is pipelined with the upsert, so a batch costs three round trips
// whatever its size. With players, the rows are staged with their player's name and team
// and the upsert is upsertFactsAndPlayersSQL; without, they are staged with NULLs there, so
// that a name or team the database refuses (NUL) fails UpsertPlayers as before, not the row. When the database refuses the data (a data error, in the COPY or the
// upsert) the transaction is rolled back to the savepoint and the error returned, so the
// caller can retry parts of the rows.
func (d *PostgresDialect) UpsertFacts(ctx context.Context, tx pgx.Tx, rows []FactRow, players bool) ([]FactWrite, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, d.beginUpsert); err != nil {
		return nil, fmt.Errorf("open savepoint and staging table: %w", err)
	}
	writes, err := d.stageAndUpsert(ctx, tx, rows, players)
	if err == nil {
		return writes, nil
	}
	if !IsDataError(err) {
		// The transaction is lost anyway (connection, serialization, cancellation...):
		// the caller rolls it back whole.
		return nil, err
	}
	if _, undoErr := tx.Exec(ctx, undoUpsertSQL); undoErr != nil {
		// Not wrapped with %w: the data error must not make the caller think the
		// transaction is still usable.
		return nil, fmt.Errorf("roll back to savepoint after %v: %w", err, undoErr) //nolint:errorlint // on purpose, see above
	}
	return nil, err
}

func (d *PostgresDialect) stageAndUpsert(ctx context.Context, tx pgx.Tx, rows []FactRow, players bool) ([]FactWrite, error) {
	copied, err := copyRows(ctx, tx.Conn(), rows, players, copyFactsSQL)
	if err != nil {
		return nil, fmt.Errorf("copy rows into staging table: %w", err)
	}
	if copied != int64(len(rows)) {
		return nil, fmt.Errorf("copy rows into staging table: copied %d of %d rows", copied, len(rows))
	}
	upsert := d.upsertFacts
	if players {
		upsert = d.upsertWithPlayers
	}
	pipeline := &pgx.Batch{}
	pipeline.Queue(upsert)
	pipeline.Queue(releaseUpsertSQL)
	results := tx.SendBatch(ctx, pipeline)
	writes, err := collectWrites(results)
	if err != nil {
		return nil, errors.Join(err, results.Close())
	}
	if _, err := results.Exec(); err != nil {
		return nil, errors.Join(fmt.Errorf("release savepoint: %w", err), results.Close())
	}
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("upsert facts: %w", err)
	}
	return writes, nil
}

// copyRows sends rows to the staging table as binary COPY data encoded by appendCopyData,
// through the connection's protocol layer, and reports it to the connection's tracer as
// pgx's own CopyFrom does (the COPY keeps its span). players says whether the player's name
// and team are sent (NULL otherwise). sql is copyFactsSQL, or a string of statements that
// ends with it (beginAndCopySQL).
func copyRows(ctx context.Context, conn *pgx.Conn, rows []FactRow, players bool, sql string) (int64, error) {
	tracer, _ := conn.Config().Tracer.(pgx.CopyFromTracer)
	if tracer != nil {
		ctx = tracer.TraceCopyFromStart(ctx, conn, pgx.TraceCopyFromStartData{TableName: stagingTable, ColumnNames: postgresStagingColumns})
	}
	buf := getCopyBuffer()
	*buf = appendCopyData(*buf, rows, players)
	tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(*buf), sql)
	if err == nil {
		// Only now is the buffer free: CopyFrom reads it in a goroutine of its own, and when
		// the connection or the server fails mid-COPY it returns without waiting for that
		// goroutine (pgx v5.12), which may still be reading. Pooled then, the buffer would
		// be written by the next load while being read: a data race the chaos soak's
		// PostgreSQL faults hit. A failed COPY's buffer is left to the collector.
		putCopyBuffer(buf)
	}
	if tracer != nil {
		tracer.TraceCopyFromEnd(ctx, conn, pgx.TraceCopyFromEndData{CommandTag: tag, Err: err})
	}
	return tag.RowsAffected(), err
}

func collectWrites(results pgx.BatchResults) ([]FactWrite, error) {
	result, err := results.Query()
	if err != nil {
		return nil, fmt.Errorf("upsert facts: %w", err)
	}
	writes, err := pgx.CollectRows(result, func(row pgx.CollectableRow) (FactWrite, error) {
		var w FactWrite
		err := row.Scan(&w.Key.PlayerID, &w.Key.GameID, &w.Inserted)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("upsert facts: %w", err)
	}
	return writes, nil
}

// UpsertPlayers implements Dialect.
func (d *PostgresDialect) UpsertPlayers(ctx context.Context, tx pgx.Tx, players []PlayerRow) error {
	if len(players) == 0 {
		return nil
	}
	ids := make([]int64, len(players))
	names := make([]string, len(players))
	teams := make([]string, len(players))
	dates := make([]pgtype.Date, len(players))
	for i, p := range players {
		ids[i], names[i], teams[i] = p.PlayerID, p.Name, p.Team
		dates[i] = pgtype.Date{Time: p.LastGameDate, Valid: true}
	}
	if _, err := tx.Exec(ctx, d.upsertPlayers, ids, names, teams, dates); err != nil {
		return fmt.Errorf("upsert players: %w", err)
	}
	return nil
}

// ApplyRetractions implements Dialect.
func (d *PostgresDialect) ApplyRetractions(ctx context.Context, tx pgx.Tx, tombstones []Tombstone) ([]RetractionWrite, error) {
	if len(tombstones) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, d.applyRetractions, retractionArgs(tombstones)...)
	if err != nil {
		return nil, fmt.Errorf("apply retractions: %w", err)
	}
	return collectRetractions(rows)
}

// retractionArgs are applyRetractionsSQL's arguments for tombstones.
func retractionArgs(tombstones []Tombstone) []any {
	n := len(tombstones)
	players, versions := make([]int64, n), make([]int64, n)
	games, eventIDs, reasons := make([]string, n), make([]string, n), make([]string, n)
	producers, streams, shards, sequences, traces := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	sourceTimes, acceptedAts := make([]*time.Time, n), make([]*time.Time, n)
	for i, t := range tombstones {
		players[i], games[i], versions[i], eventIDs[i], reasons[i] = t.PlayerID, t.GameID, t.Version, t.EventID, t.Reason
		producers[i], streams[i], shards[i], sequences[i], traces[i] = t.Producer, t.SourceStream, t.SourceShardID, t.SourceSequenceNumber, t.TraceID
		sourceTimes[i], acceptedAts[i] = t.SourceTime, t.AcceptedAt
	}
	return []any{players, games, versions, eventIDs, producers, reasons,
		sourceTimes, acceptedAts, streams, shards, sequences, traces}
}

// collectRetractions reads what applyRetractionsSQL returns.
func collectRetractions(rows pgx.Rows) ([]RetractionWrite, error) {
	writes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RetractionWrite, error) {
		var w RetractionWrite
		err := row.Scan(&w.Key.PlayerID, &w.Key.GameID, &w.Removed, &w.Replaced)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("apply retractions: %w", err)
	}
	return writes, nil
}

// InsertDeadLetters implements Dialect.
func (d *PostgresDialect) InsertDeadLetters(ctx context.Context, tx pgx.Tx, letters []DeadLetter) (int64, error) {
	if len(letters) == 0 {
		return 0, nil
	}
	tag, err := tx.Exec(ctx, d.insertDeadLetters, deadLetterArgs(letters)...)
	if err != nil {
		return 0, fmt.Errorf("insert dead letters: %w", err)
	}
	return tag.RowsAffected(), nil
}

// deadLetterArgs are insertDeadLettersSQL's arguments for letters.
func deadLetterArgs(letters []DeadLetter) []any {
	n := len(letters)
	stages, reasons, details, fields, eventIDs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	streams, shards, sequences := make([]string, n), make([]string, n), make([]string, n)
	versions := make([]int64, n)
	payloads := make([][]byte, n)
	players, hasPlayer, games := make([]int64, n), make([]bool, n), make([]string, n)
	producers := make([]string, n)
	for i, l := range letters {
		producers[i] = l.Producer
		stages[i], reasons[i], details[i], fields[i], eventIDs[i] = l.Stage, l.Reason, l.Detail, l.Field, l.EventID
		versions[i] = l.EventVersion
		streams[i], shards[i], sequences[i] = l.Stream, l.ShardID, l.SequenceNumber
		payloads[i] = l.Payload
		players[i], hasPlayer[i], games[i] = l.Subject.PlayerID, l.Subject.HasPlayer, l.Subject.GameID
	}
	return []any{stages, reasons, details, fields, eventIDs, versions, streams, shards, sequences, payloads,
		players, hasPlayer, games, producers}
}

// ReadCheckpoint implements Dialect.
func (d *PostgresDialect) ReadCheckpoint(ctx context.Context, q Querier, stream, shardID string) (Checkpoint, error) {
	stored, err := scanCheckpoint(q.QueryRow(ctx, d.selectCheckpoint, stream, shardID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{Stream: stream, ShardID: shardID}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	return stored, nil
}

// SetStreamIdentity implements Dialect.
func (d *PostgresDialect) SetStreamIdentity(ctx context.Context, tx pgx.Tx, stream, shardID, identity string, reset bool) (Checkpoint, error) {
	stored, err := scanCheckpoint(tx.QueryRow(ctx, d.setIdentity, stream, shardID, identity, reset))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("set stream identity: %w", err)
	}
	return stored, nil
}

// InsertGap implements Dialect.
func (d *PostgresDialect) InsertGap(ctx context.Context, tx pgx.Tx, g Gap) error {
	if _, err := tx.Exec(ctx, d.insertGap, gapArgs(g)...); err != nil {
		return fmt.Errorf("insert stream gap: %w", err)
	}
	return nil
}

// gapArgs are insertGapSQL's arguments for g.
func gapArgs(g Gap) []any {
	var oldUpdated *time.Time
	if !g.Old.UpdatedAt.IsZero() {
		oldUpdated = &g.Old.UpdatedAt
	}
	return []any{g.Stream, g.ShardID, g.Reason, g.AfterSequenceNumber, g.BeforeSequenceNumber,
		g.OldStreamIdentity, g.StreamIdentity, g.Old.ShardEnd, oldUpdated, g.ConsumerID, g.Detail}
}

func scanCheckpoint(row pgx.Row) (Checkpoint, error) {
	var c Checkpoint
	if err := row.Scan(&c.Stream, &c.ShardID, &c.SequenceNumber, &c.ShardEnd, &c.UpdatedAt, &c.LeaseToken, &c.Owner, &c.StreamIdentity); err != nil {
		return Checkpoint{}, err
	}
	return c, nil
}
