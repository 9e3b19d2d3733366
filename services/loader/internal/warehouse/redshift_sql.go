package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// The statements of the Redshift path. Each is one statement (Redshift refuses several in
// one call; the pool runs pgx's exec mode: one unnamed statement, arguments bound as text), with
// nothing Redshift lacks: no ON CONFLICT, no RETURNING, no SAVEPOINT, no COPY FROM STDIN,
// no arrays or unnest, no row-value comparisons, no COLLATE, and no now() (a leader-node
// function on Redshift: times are bound arguments). Tables are {schema}.table as in the
// PostgreSQL dialect; the temporary tables of a load are created and dropped inside its
// transaction, under names of their own (rs_load_*).
//
// event_id is compared with the column's collation: byte-wise on Redshift (case-sensitive,
// no locale) and in the C.UTF-8 databases the tests run on, the order compareVersions uses.

// stagingColumns are the columns of a load's staging table, in the order the staged CSV
// holds them (stageRecord writes them): the request the row came from, the retraction
// reason (NULL for a line, set for a tombstone), the player's name and team (for
// dim_player), then factColumns.
var stagingColumns = append([]string{"req", "retraction_reason", "player_name", "player_team"}, factColumns...)

// factColumnTypes are the Redshift types of factColumns, as the migration declares them.
var factColumnTypes = map[string]string{
	"player_id": "BIGINT", "game_date": "DATE", "game_number": "SMALLINT", "season": "SMALLINT", "home": "BOOLEAN",
	"version": "BIGINT", "source_time": "TIMESTAMPTZ", "accepted_at": "TIMESTAMPTZ",
}

func stagingColumnType(column string) string {
	switch column {
	case "req":
		return "INTEGER"
	case "retraction_reason":
		return "VARCHAR(2048)"
	}
	if t, ok := factColumnTypes[column]; ok {
		return t
	}
	switch column {
	case "game_id", "opponent", "event_id", "source_stream", "source_shard_id", "source_sequence_number", "trace_id", "producer",
		"player_name", "player_team":
		return "VARCHAR(1024)"
	}
	return "INTEGER" // the counting stats
}

// lockTablesSQL serializes the loads and claims of every replica on the tables they
// write: taken first, it makes the serializable conflicts Redshift would otherwise report
// (ERROR 1023) rare. Valid on both engines.
const lockTablesSQL = `LOCK TABLE {schema}.shard_checkpoint, {schema}.fact_batting_game, {schema}.batting_game_retraction, {schema}.dim_player, {schema}.dead_letter, {schema}.stream_gap`

// lockCheckpointsSQL is a claim's lock: claims write only checkpoints (and gaps).
const lockCheckpointsSQL = `LOCK TABLE {schema}.shard_checkpoint, {schema}.stream_gap`

// rsAdvanceCheckpointSQL is advanceCheckpointSQL without RETURNING: its row count says
// whether it moved, a SELECT reads the result. $8 is the commit's time.
const rsAdvanceCheckpointSQL = `UPDATE {schema}.shard_checkpoint
SET sequence_number = $4, shard_end = $5, consumer_id = NULLIF($6, ''), updated_at = $8
WHERE stream = $1 AND shard_id = $2 AND sequence_number = $3 AND lease_token = $7 AND NOT shard_end`

// rsInsertCheckpointSQL creates the checkpoint of a shard never claimed (nothing committed).
const rsInsertCheckpointSQL = `INSERT INTO {schema}.shard_checkpoint (stream, shard_id, sequence_number, shard_end, lease_token, owner, updated_at, stream_identity)
VALUES ($1, $2, '', false, $3, $4, $5, $6)`

// rsClaimCheckpointSQL stores a claim's token and owner on an existing row, under the rule
// of claimShardSQL.
const rsClaimCheckpointSQL = `UPDATE {schema}.shard_checkpoint
SET lease_token = $3, owner = $4
WHERE stream = $1 AND shard_id = $2
  AND ($3 > lease_token OR ($3 = lease_token AND owner = $4))`

// rsSetStreamIdentitySQL is setStreamIdentitySQL without RETURNING; $5 is the time.
const rsSetStreamIdentitySQL = `UPDATE {schema}.shard_checkpoint
SET stream_identity = $3,
    sequence_number = CASE WHEN $4 THEN '' ELSE sequence_number END,
    shard_end = CASE WHEN $4 THEN false ELSE shard_end END,
    updated_at = CASE WHEN $4 THEN $5 ELSE updated_at END
WHERE stream = $1 AND shard_id = $2`

// rsInsertGapSQL is insertGapSQL with the time bound ($12) rather than defaulted.
const rsInsertGapSQL = `INSERT INTO {schema}.stream_gap (stream, shard_id, reason, after_sequence_number, before_sequence_number,
    old_stream_identity, stream_identity, old_shard_end, old_updated_at, consumer_id, detail, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, ''), NULLIF($11, ''), $12)`

// rsCopyCountSQL is how many rows the session's last COPY loaded.
const rsCopyCountSQL = `SELECT pg_last_copy_count()`

// rsEffectiveSQL keeps, per key, the staged line or tombstone with the greatest
// (version, event_id) (several requests of a window may carry one key), and of those only
// the ones above both the stored line and the stored tombstone of their key: a
// redelivered, older or equal one changes nothing. It also notes what was stored (for the
// counts: inserted or updated) and the line a tombstone removes (or, when it removes none,
// the one the tombstone it replaces had removed).
var rsEffectiveSQL = `CREATE TEMP TABLE rs_load_effective AS
SELECT ` + prefixed("l.", stagingColumns) + `,
    (f.player_id IS NOT NULL) AS line_exists,
    (t.player_id IS NOT NULL) AS tomb_exists,
    CASE WHEN f.player_id IS NULL THEN t.removed_event_id ELSE f.event_id END AS removed_event_id,
    CASE WHEN f.player_id IS NULL THEN t.removed_version ELSE f.version END AS removed_version
FROM (
    SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.player_id, s.game_id ORDER BY s.version DESC, s.event_id DESC) AS rank_in_key
    FROM rs_load_staging s
) l
LEFT JOIN {schema}.fact_batting_game f ON f.player_id = l.player_id AND f.game_id = l.game_id
LEFT JOIN {schema}.batting_game_retraction t ON t.player_id = l.player_id AND t.game_id = l.game_id
WHERE l.rank_in_key = 1
  AND (f.player_id IS NULL OR l.version > f.version OR (l.version = f.version AND l.event_id > f.event_id))
  AND (t.player_id IS NULL OR l.version > t.version OR (l.version = t.version AND l.event_id > t.event_id))`

// rsEffectiveResultSQL reads what the load will write, per request, for the counts.
const rsEffectiveResultSQL = `SELECT req, player_id, game_id, retraction_reason IS NOT NULL, line_exists, tomb_exists
FROM rs_load_effective
ORDER BY player_id, game_id`

// rsLinesSQL is the lines to merge (MERGE takes a table as its source).
const rsLinesSQL = `CREATE TEMP TABLE rs_load_lines AS SELECT * FROM rs_load_effective WHERE retraction_reason IS NULL`

// rsMergeFactsSQL writes the lines: every one is newer than what its key holds (filtered
// above, as Redshift's MERGE takes no extra condition), so a match is replaced and a new
// key inserted. The key stays unique because the source holds each key once.
var rsMergeFactsSQL = `MERGE INTO {schema}.fact_batting_game USING rs_load_lines l
ON fact_batting_game.player_id = l.player_id AND fact_batting_game.game_id = l.game_id
WHEN MATCHED THEN UPDATE SET ` + assignments(factColumns[2:], "l.") + `, loaded_at = $1
WHEN NOT MATCHED THEN INSERT (` + strings.Join(factColumns, ", ") + `, loaded_at)
VALUES (` + prefixed("l.", factColumns) + `, $1)`

// rsDeleteRetractedSQL removes the lines the effective tombstones retract.
const rsDeleteRetractedSQL = `DELETE FROM {schema}.fact_batting_game USING rs_load_effective e
WHERE fact_batting_game.player_id = e.player_id AND fact_batting_game.game_id = e.game_id AND e.retraction_reason IS NOT NULL`

// rsDeleteReplacedTombstonesSQL removes the tombstones the effective ones replace.
const rsDeleteReplacedTombstonesSQL = `DELETE FROM {schema}.batting_game_retraction USING rs_load_effective e
WHERE batting_game_retraction.player_id = e.player_id AND batting_game_retraction.game_id = e.game_id AND e.retraction_reason IS NOT NULL`

// rsInsertTombstonesSQL stores the effective tombstones; $1 is the time.
const rsInsertTombstonesSQL = `INSERT INTO {schema}.batting_game_retraction (player_id, game_id, version, event_id, producer, reason,
    removed_event_id, removed_version, source_time, accepted_at, retracted_at,
    source_stream, source_shard_id, source_sequence_number, trace_id)
SELECT player_id, game_id, version, event_id, producer, retraction_reason,
    removed_event_id, removed_version, source_time, accepted_at, $1,
    source_stream, source_shard_id, source_sequence_number, trace_id
FROM rs_load_effective
WHERE retraction_reason IS NOT NULL`

// rsPlayersSQL takes each written player's name and team from its latest game (date, game
// number, then version and event id), as latestPlayers does.
const rsPlayersSQL = `CREATE TEMP TABLE rs_load_players AS
SELECT player_id, player_name AS name, player_team AS team, game_date AS last_game_date
FROM (
    SELECT player_id, player_name, player_team, game_date,
        ROW_NUMBER() OVER (PARTITION BY player_id ORDER BY game_date DESC, game_number DESC, version DESC, event_id DESC) AS rank_in_player
    FROM rs_load_lines
) p
WHERE rank_in_player = 1`

// rsUpdatePlayersSQL is upsertPlayersSQL's update: the stored values win when they come
// from a later game; an identical row is left alone. $1 is the time.
const rsUpdatePlayersSQL = `UPDATE {schema}.dim_player
SET name = p.name, team = p.team, last_game_date = p.last_game_date, updated_at = $1
FROM rs_load_players p
WHERE dim_player.player_id = p.player_id AND p.last_game_date >= dim_player.last_game_date
  AND (p.name <> dim_player.name OR p.team <> dim_player.team OR p.last_game_date <> dim_player.last_game_date)`

// rsInsertPlayersSQL is upsertPlayersSQL's insert, for players not stored yet.
const rsInsertPlayersSQL = `INSERT INTO {schema}.dim_player (player_id, name, team, last_game_date, updated_at)
SELECT p.player_id, p.name, p.team, p.last_game_date, $1
FROM rs_load_players p
WHERE NOT EXISTS (SELECT 1 FROM {schema}.dim_player d WHERE d.player_id = p.player_id)`

// rsDropTempSQL drop a load's temporary tables before its commit, so a session keeps none.
var rsDropTempSQL = []string{
	`DROP TABLE rs_load_players`, `DROP TABLE rs_load_lines`, `DROP TABLE rs_load_effective`, `DROP TABLE rs_load_staging`,
}

// deadLetterColumnCount is the number of arguments of one dead letter in rsDeadLetterSelect.
const deadLetterColumnCount = 14

// rsDeadLetterSelect is one dead letter's row in rsInsertDeadLettersSQL (one SELECT per
// letter, joined by UNION ALL: Redshift has no arrays to unnest), each $? numbered by
// numberArguments. The payload is sent in hex and decoded by from_hex (VARBYTE).
const rsDeadLetterSelect = `SELECT CAST($? AS VARCHAR(256)) AS stage, CAST($? AS VARCHAR(256)) AS reason, CAST(NULLIF($?, '') AS VARCHAR(8192)) AS detail,
    CAST(NULLIF($?, '') AS VARCHAR(256)) AS field, CAST(NULLIF($?, '') AS VARCHAR(256)) AS event_id, CAST(NULLIF($?, 0) AS BIGINT) AS event_version,
    CAST($? AS VARCHAR(256)) AS stream, CAST($? AS VARCHAR(256)) AS shard_id, CAST($? AS VARCHAR(256)) AS sequence_number,
    from_hex($?) AS payload, CAST($? AS BIGINT) AS player_id, CAST(NULLIF($?, '') AS VARCHAR(256)) AS game_id,
    CAST(NULLIF($?, '') AS VARCHAR(256)) AS producer, CAST($? AS TIMESTAMPTZ) AS created_at`

// rsInsertDeadLettersSQL inserts dead letters unless one is stored for the same position
// and stage, or for the same event id, version, stage and reason when both are known (the
// two keys of the PostgreSQL table, kept here by the statement: Redshift enforces none).
// Duplicates among the letters themselves are removed before (dedupeLetters).
const rsInsertDeadLettersSQL = `INSERT INTO {schema}.dead_letter (stage, reason, detail, field, event_id, event_version, stream, shard_id, sequence_number, payload,
    player_id, game_id, payload_indexed, producer, created_at)
SELECT i.stage, i.reason, i.detail, i.field, i.event_id, i.event_version, i.stream, i.shard_id, i.sequence_number, i.payload,
    i.player_id, i.game_id, true, i.producer, i.created_at
FROM (%s) i
WHERE NOT EXISTS (SELECT 1 FROM {schema}.dead_letter d
        WHERE d.stream = i.stream AND d.shard_id = i.shard_id AND d.sequence_number = i.sequence_number AND d.stage = i.stage)
  AND (i.event_id IS NULL OR i.event_version IS NULL OR NOT EXISTS (SELECT 1 FROM {schema}.dead_letter d
        WHERE d.event_id = i.event_id AND d.event_version = i.event_version AND d.stage = i.stage AND d.reason = i.reason))`

func prefixed(prefix string, columns []string) string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = prefix + c
	}
	return strings.Join(out, ", ")
}

func assignments(columns []string, prefix string) string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = c + " = " + prefix + c
	}
	return strings.Join(out, ", ")
}

// RedshiftDialect holds the Redshift statements for one schema; see the statements above.
type RedshiftDialect struct {
	replace *strings.Replacer
	// The statements with the schema in place.
	lockTables, lockCheckpoints, advance, insertCheckpoint, claimCheckpoint, setIdentity, insertGap, selectCheckpoint string
	effective, mergeFacts, deleteRetracted, deleteReplacedTombstones, insertTombstones, updatePlayers, insertPlayers  string
	insertDeadLetters                                                                                                 string
}

var _ checkpointDialect = (*RedshiftDialect)(nil)

// NewRedshiftDialect returns the Redshift statements for tables in schema.
func NewRedshiftDialect(schema string) (*RedshiftDialect, error) {
	if err := migrations.ValidateSchema(schema); err != nil {
		return nil, fmt.Errorf("redshift dialect: %w", err)
	}
	r := strings.NewReplacer("{schema}", pgx.Identifier{schema}.Sanitize())
	return &RedshiftDialect{
		replace:    r,
		lockTables: r.Replace(lockTablesSQL), lockCheckpoints: r.Replace(lockCheckpointsSQL),
		advance: r.Replace(rsAdvanceCheckpointSQL), insertCheckpoint: r.Replace(rsInsertCheckpointSQL),
		claimCheckpoint: r.Replace(rsClaimCheckpointSQL), setIdentity: r.Replace(rsSetStreamIdentitySQL),
		insertGap: r.Replace(rsInsertGapSQL), selectCheckpoint: r.Replace(selectCheckpointSQL),
		effective: r.Replace(rsEffectiveSQL), mergeFacts: r.Replace(rsMergeFactsSQL),
		deleteRetracted: r.Replace(rsDeleteRetractedSQL), deleteReplacedTombstones: r.Replace(rsDeleteReplacedTombstonesSQL),
		insertTombstones: r.Replace(rsInsertTombstonesSQL), updatePlayers: r.Replace(rsUpdatePlayersSQL),
		insertPlayers: r.Replace(rsInsertPlayersSQL), insertDeadLetters: r.Replace(rsInsertDeadLettersSQL),
	}, nil
}

// createStagingSQL declares the staging table with explicit columns (no LIKE: the staged
// CSV's order is stagingColumns').
func createStagingSQL() string {
	cols := make([]string, len(stagingColumns))
	for i, c := range stagingColumns {
		cols[i] = c + " " + stagingColumnType(c)
	}
	return "CREATE TEMP TABLE rs_load_staging (" + strings.Join(cols, ", ") + ")"
}

// copySQL is the COPY of a staged load into the staging table.
func copySQL(manifestURI, roleARN, options string) string {
	return "COPY rs_load_staging (" + strings.Join(stagingColumns, ", ") + ") FROM " + quoteLiteral(manifestURI) +
		" IAM_ROLE " + quoteLiteral(roleARN) + " " + options
}

// quoteLiteral quotes s as an SQL string literal (COPY takes no bound arguments). The URI
// and role come from configuration, checked to hold no backslash (an escape in Redshift's
// literals, not in PostgreSQL's) nor quote: s3stage.New and RedshiftConfig.Validate.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// deleteRequestsSQL removes the staged rows of the requests a load refused (fenced or
// mismatched): request indexes are integers, written in the statement.
func deleteRequestsSQL(reqs []int) string {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = strconv.Itoa(r)
	}
	return "DELETE FROM rs_load_staging WHERE req IN (" + strings.Join(ids, ", ") + ")"
}

// ReadCheckpoint reads a shard's checkpoint (see Dialect.ReadCheckpoint).
func (d *RedshiftDialect) ReadCheckpoint(ctx context.Context, q Querier, stream, shardID string) (Checkpoint, error) {
	stored, err := scanCheckpoint(q.QueryRow(ctx, d.selectCheckpoint, stream, shardID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{Stream: stream, ShardID: shardID}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	return stored, nil
}

// ClaimShard implements the claim of Dialect.ClaimShard with a lock and plain statements.
func (d *RedshiftDialect) ClaimShard(ctx context.Context, tx pgx.Tx, c Claim) (Checkpoint, bool, error) {
	if _, err := tx.Exec(ctx, d.lockCheckpoints); err != nil {
		return Checkpoint{}, false, fmt.Errorf("lock checkpoints: %w", err)
	}
	stored, err := scanCheckpoint(tx.QueryRow(ctx, d.selectCheckpoint, c.Stream, c.ShardID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, d.insertCheckpoint, c.Stream, c.ShardID, c.LeaseToken, c.Owner, time.Now().UTC(), c.StreamIdentity); err != nil {
			return Checkpoint{}, false, fmt.Errorf("claim shard: %w", err)
		}
	case err != nil:
		return Checkpoint{}, false, fmt.Errorf("claim shard: %w", err)
	default:
		tag, err := tx.Exec(ctx, d.claimCheckpoint, c.Stream, c.ShardID, c.LeaseToken, c.Owner)
		if err != nil {
			return Checkpoint{}, false, fmt.Errorf("claim shard: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return stored, false, nil
		}
	}
	stored, err = d.ReadCheckpoint(ctx, tx, c.Stream, c.ShardID)
	if err != nil {
		return Checkpoint{}, false, err
	}
	return stored, true, nil
}

// SetStreamIdentity implements Dialect.SetStreamIdentity.
func (d *RedshiftDialect) SetStreamIdentity(ctx context.Context, tx pgx.Tx, stream, shardID, identity string, reset bool) (Checkpoint, error) {
	if _, err := tx.Exec(ctx, d.setIdentity, stream, shardID, identity, reset, time.Now().UTC()); err != nil {
		return Checkpoint{}, fmt.Errorf("set stream identity: %w", err)
	}
	return d.ReadCheckpoint(ctx, tx, stream, shardID)
}

// InsertGap implements Dialect.InsertGap.
func (d *RedshiftDialect) InsertGap(ctx context.Context, tx pgx.Tx, g Gap) error {
	var oldUpdated *time.Time
	if !g.Old.UpdatedAt.IsZero() {
		oldUpdated = &g.Old.UpdatedAt
	}
	_, err := tx.Exec(ctx, d.insertGap, g.Stream, g.ShardID, g.Reason, g.AfterSequenceNumber, g.BeforeSequenceNumber,
		g.OldStreamIdentity, g.StreamIdentity, g.Old.ShardEnd, oldUpdated, g.ConsumerID, g.Detail, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("insert stream gap: %w", err)
	}
	return nil
}

// numberArguments replaces each "$?" of template with $first, $first+1, ...
func numberArguments(template string, first int) string {
	var b strings.Builder
	n := first
	for {
		i := strings.Index(template, "$?")
		if i < 0 {
			b.WriteString(template)
			return b.String()
		}
		b.WriteString(template[:i])
		b.WriteString("$" + strconv.Itoa(n))
		n++
		template = template[i+2:]
	}
}
