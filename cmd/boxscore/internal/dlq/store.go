package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Letter is one row of dead_letter.
type Letter struct {
	ID             int64
	CreatedAt      time.Time
	Stage          string
	Reason         string
	Detail         string
	Field          string
	EventID        string
	Stream         string
	ShardID        string
	SequenceNumber string
	PlayerID       *int64
	GameID         string
	// Producer is the authenticated producer that sent the event; empty when unknown (a
	// letter stored before migration 00010, or a record not decoded that far).
	Producer string
	Payload  []byte

	ReplayedAt         *time.Time
	ReplayEventID      string
	ReplayEventVersion *int64
}

// Filter selects dead letters. Zero fields do not filter.
type Filter struct {
	IDs     []int64
	Since   time.Time // created_at >= Since
	Until   time.Time // created_at < Until
	Stages  []string
	Reasons []string
	Players []int64
	// Producers selects by the stored producer.
	Producers []string
	// EventIDs selects by the stored event id.
	EventIDs []string
	// OlderThan: created_at < now() - OlderThan (purge).
	OlderThan time.Duration
	// NotReplayed keeps the rows never replayed.
	NotReplayed bool
	Limit       int
}

// empty reports whether f selects every dead letter.
func (f Filter) empty() bool {
	return len(f.IDs) == 0 && f.Since.IsZero() && f.Until.IsZero() && len(f.Stages) == 0 &&
		len(f.Reasons) == 0 && len(f.Players) == 0 && len(f.Producers) == 0 && len(f.EventIDs) == 0 && f.OlderThan == 0 && !f.NotReplayed
}

// where returns the WHERE clause of f (or "") and its arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if len(f.IDs) > 0 {
		conds = append(conds, "id = ANY("+arg(f.IDs)+"::bigint[])")
	}
	if !f.Since.IsZero() {
		conds = append(conds, "created_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "created_at < "+arg(f.Until))
	}
	if f.OlderThan > 0 {
		conds = append(conds, "created_at < now() - "+arg(f.OlderThan.String())+"::interval")
	}
	if len(f.Stages) > 0 {
		conds = append(conds, "stage = ANY("+arg(f.Stages)+"::text[])")
	}
	if len(f.Reasons) > 0 {
		conds = append(conds, "reason = ANY("+arg(f.Reasons)+"::text[])")
	}
	if len(f.Players) > 0 {
		conds = append(conds, "player_id = ANY("+arg(f.Players)+"::bigint[])")
	}
	if len(f.Producers) > 0 {
		conds = append(conds, "producer = ANY("+arg(f.Producers)+"::text[])")
	}
	if len(f.EventIDs) > 0 {
		conds = append(conds, "event_id = ANY("+arg(f.EventIDs)+"::text[])")
	}
	if f.NotReplayed {
		conds = append(conds, "replayed_at IS NULL")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// store reads and writes one warehouse's dead_letter table.
type store struct {
	conn  *pgx.Conn
	table string // schema-qualified, quoted
	facts string
	// columns is the SELECT list of a Letter: the producer column only when the warehouse has
	// it (loader migration 00010), so that dlq still reads a warehouse not migrated yet.
	columns     string
	hasProducer bool
}

func openStore(ctx context.Context, databaseURL, schema string) (*store, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the warehouse: %w", err)
	}
	s := &store{
		conn:  conn,
		table: pgx.Identifier{schema, "dead_letter"}.Sanitize(),
		facts: pgx.Identifier{schema, "fact_batting_game"}.Sanitize(),
	}
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'dead_letter' AND column_name = 'producer')`, schema).Scan(&s.hasProducer)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("read the dead-letter table's columns: %w", err)
	}
	producer := `''`
	if s.hasProducer {
		producer = `coalesce(producer, '')`
	}
	s.columns = letterColumns + `, ` + producer
	return s, nil
}

func (s *store) close(ctx context.Context) error {
	if err := s.conn.Close(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("close the warehouse connection: %w", err)
	}
	return nil
}

const letterColumns = `id, created_at, stage, reason, coalesce(detail, ''), coalesce(field, ''), coalesce(event_id, ''),
	stream, shard_id, sequence_number, player_id, coalesce(game_id, ''), payload,
	replayed_at, coalesce(replay_event_id, ''), replay_event_version`

// scanLetter reads a row of store.columns: letterColumns and the producer.
func scanLetter(row pgx.Row) (Letter, error) {
	var l Letter
	err := row.Scan(&l.ID, &l.CreatedAt, &l.Stage, &l.Reason, &l.Detail, &l.Field, &l.EventID,
		&l.Stream, &l.ShardID, &l.SequenceNumber, &l.PlayerID, &l.GameID, &l.Payload,
		&l.ReplayedAt, &l.ReplayEventID, &l.ReplayEventVersion, &l.Producer)
	return l, err
}

// canFilter refuses a producer filter on a warehouse without the producer column, rather
// than an SQL error.
func (s *store) canFilter(f Filter) error {
	if len(f.Producers) > 0 && !s.hasProducer {
		return errors.New("--producer: this warehouse's dead_letter has no producer column yet (loader migration 00010); run the current loader's migrations")
	}
	return nil
}

// list returns the dead letters f selects, oldest first.
func (s *store) list(ctx context.Context, f Filter) ([]Letter, error) {
	if err := s.canFilter(f); err != nil {
		return nil, err
	}
	where, args := f.where()
	query := `SELECT ` + s.columns + ` FROM ` + s.table + where + ` ORDER BY id`
	if f.Limit > 0 { // the most recent, oldest first
		query = `SELECT * FROM (SELECT ` + s.columns + ` FROM ` + s.table + where +
			` ORDER BY id DESC LIMIT ` + strconv.Itoa(f.Limit) + `) AS latest ORDER BY 1`
	}
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	letters, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Letter, error) { return scanLetter(r) })
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return letters, nil
}

// get returns one dead letter, or an error naming the id when there is none.
func (s *store) get(ctx context.Context, id int64) (Letter, error) {
	l, err := scanLetter(s.conn.QueryRow(ctx, `SELECT `+s.columns+` FROM `+s.table+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Letter{}, fmt.Errorf("no dead letter %d", id)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("read dead letter %d: %w", id, err)
	}
	return l, nil
}

// indexBatch is how many rows one round of index decodes and updates.
const indexBatch = 1000

// index decodes the payloads of the rows not yet indexed and stores their player and game,
// so that --player finds them. The loader stores both when it inserts a dead letter (with
// the same rule, deadletter.DecodePayload); only the rows a loader older than that wrote
// are left, and they are indexed once, in batches, by the first command that runs. It
// returns how many rows it indexed. Concurrent runs write the same values: harmless.
func (s *store) index(ctx context.Context) (int, error) {
	total := 0
	for {
		rows, err := s.conn.Query(ctx, `SELECT id, stage, payload FROM `+s.table+
			` WHERE NOT payload_indexed ORDER BY id LIMIT `+strconv.Itoa(indexBatch))
		if err != nil {
			return total, fmt.Errorf("read dead letters to index: %w", err)
		}
		var ids, players []int64
		var games []string
		var hasPlayer []bool
		var id int64
		var stage string
		var payload []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &stage, &payload}, func() error {
			sub := decodePayload(stage, payload).Subject()
			ids = append(ids, id)
			players = append(players, sub.PlayerID)
			hasPlayer = append(hasPlayer, sub.HasPlayer)
			games = append(games, sub.GameID)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("read dead letters to index: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		_, err = s.conn.Exec(ctx, `UPDATE `+s.table+` AS d
SET player_id = CASE WHEN u.has_player THEN u.player_id END, game_id = NULLIF(u.game_id, ''), payload_indexed = true
FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::text[]) AS u(id, player_id, has_player, game_id)
WHERE d.id = u.id`, ids, players, hasPlayer, games)
		if err != nil {
			return total, fmt.Errorf("store the player and game of %d dead letters: %w", len(ids), err)
		}
		total += len(ids)
		if len(ids) < indexBatch {
			return total, nil
		}
	}
}

// indexOrWarn indexes, and on a refusal for lack of privilege (a read-only user) says that
// --player may miss the rows not indexed yet instead of failing.
func (s *store) indexOrWarn(ctx context.Context, warn func(string)) error {
	_, err := s.index(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		warn("cannot store the players of new dead letters (" + pgErr.Message + "): --player and the player column may miss them")
		return nil
	}
	return err
}

// warehouseVersions returns the version the fact table holds for each (player, game) asked.
func (s *store) warehouseVersions(ctx context.Context, players []int64, games []string) (map[gameKey]int64, error) {
	out := map[gameKey]int64{}
	if len(players) == 0 {
		return out, nil
	}
	rows, err := s.conn.Query(ctx, `SELECT f.player_id, f.game_id, f.version FROM `+s.facts+` AS f
JOIN unnest($1::bigint[], $2::text[]) AS k(player_id, game_id) ON f.player_id = k.player_id AND f.game_id = k.game_id`, players, games)
	if err != nil {
		return nil, fmt.Errorf("read the warehouse's versions: %w", err)
	}
	var k gameKey
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&k.player, &k.game, &v}, func() error { out[k] = v; return nil }); err != nil {
		return nil, fmt.Errorf("read the warehouse's versions: %w", err)
	}
	return out, nil
}

type gameKey struct {
	player int64
	game   string
}

// markReplayed records that the dead letters were sent again as the given events.
func (s *store) markReplayed(ctx context.Context, ids []int64, eventIDs []string, versions []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.conn.Exec(ctx, `UPDATE `+s.table+` AS d
SET replayed_at = now(), replay_event_id = u.event_id, replay_event_version = u.version
FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(id, event_id, version)
WHERE d.id = u.id`, ids, eventIDs, versions)
	if err != nil {
		return fmt.Errorf("mark %d dead letters replayed: %w", len(ids), err)
	}
	return nil
}

// count returns how many dead letters f selects.
func (s *store) count(ctx context.Context, f Filter) (int64, error) {
	if err := s.canFilter(f); err != nil {
		return 0, err
	}
	where, args := f.where()
	var n int64
	if err := s.conn.QueryRow(ctx, `SELECT count(*) FROM `+s.table+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// purgeBatch is how many rows one DELETE of purge removes.
const purgeBatch = 5000

// purge deletes the dead letters f selects (f must not be empty), in batches so no statement
// holds many locks, and returns how many it deleted.
func (s *store) purge(ctx context.Context, f Filter) (int64, error) {
	if f.empty() {
		return 0, errors.New("refusing to purge every dead letter: give --older-than or a filter")
	}
	if err := s.canFilter(f); err != nil {
		return 0, err
	}
	where, args := f.where()
	args = append(args, purgeBatch)
	query := `DELETE FROM ` + s.table + ` WHERE id IN (SELECT id FROM ` + s.table + where +
		` ORDER BY id LIMIT $` + strconv.Itoa(len(args)) + `)`
	var total int64
	for {
		tag, err := s.conn.Exec(ctx, query, args...)
		if err != nil {
			return total, fmt.Errorf("purge dead letters: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeBatch {
			return total, nil
		}
	}
}
