package warehouse

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dialect is the seam between the Load flow and one warehouse engine: every statement that
// depends on the engine lives behind it, and Store.Load only decides what to write and in
// which order, inside the transaction it owns.
//
// PostgresDialect is the implementation for PostgreSQL: rows go through COPY FROM STDIN
// into a temporary staging table, then one INSERT ... ON CONFLICT upserts them.
//
// A Redshift dialect can be added beside it without touching Store: Redshift speaks the
// PostgreSQL wire protocol, so the transaction stays a pgx.Tx, but it has no COPY FROM
// STDIN, no ON CONFLICT and no enforced keys. Its UpsertFacts would write the rows as a file
// to S3, COPY it into a staging table, compute the inserted/updated keys with joins, then
// MERGE; its UpsertPlayers and InsertDeadLetters would use MERGE or INSERT ... WHERE NOT
// EXISTS; its AdvanceCheckpoint keeps the same UPDATE ... WHERE sequence_number = expected
// (Redshift runs serializable transactions, and the conflicts it reports are transient).
//
// Contract shared by every implementation:
//   - every method runs inside tx and writes nothing outside it;
//   - UpsertFacts receives rows unique by (player_id, game_id), sorted by that key;
//   - a row replaces the stored one only when its (version, event_id) is greater, with
//     event_id compared byte-wise (COLLATE "C"), the order compareVersions uses;
//   - InsertDeadLetters skips rejections already stored for the same position and stage;
//   - AdvanceCheckpoint never moves a checkpoint whose shard_end is set.
type Dialect interface {
	// AdvanceCheckpoint moves the checkpoint of update's shard from update.Expected to
	// update.SequenceNumber. An empty Expected means the shard must have no checkpoint yet.
	// It reports whether the checkpoint moved; when it did not, stored is the checkpoint
	// found (SequenceNumber empty when there is none).
	AdvanceCheckpoint(ctx context.Context, tx pgx.Tx, update CheckpointUpdate) (stored Checkpoint, advanced bool, err error)
	// UpsertFacts writes rows into fact_batting_game and returns the keys it inserted or
	// replaced; rows left unchanged are not returned.
	UpsertFacts(ctx context.Context, tx pgx.Tx, rows []FactRow) ([]FactWrite, error)
	// UpsertPlayers records the name and team of each player unless the stored ones come
	// from a later game.
	UpsertPlayers(ctx context.Context, tx pgx.Tx, players []PlayerRow) error
	// InsertDeadLetters writes rejections and returns how many were new.
	InsertDeadLetters(ctx context.Context, tx pgx.Tx, letters []DeadLetter) (int64, error)
	// ReadCheckpoint returns the checkpoint of a shard; SequenceNumber is empty when there
	// is none.
	ReadCheckpoint(ctx context.Context, q Querier, stream, shardID string) (Checkpoint, error)
}

// Querier runs a single-row query: a *pgxpool.Pool or a pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Checkpoint is a stored shard position.
type Checkpoint struct {
	Stream         string
	ShardID        string
	SequenceNumber string // empty when the shard has no checkpoint
	ShardEnd       bool
	UpdatedAt      time.Time // zero when the shard has no checkpoint
}

// CheckpointUpdate is a compare-and-set of a shard position.
type CheckpointUpdate struct {
	Stream         string
	ShardID        string
	Expected       string // empty: the shard must have no checkpoint yet
	SequenceNumber string
	ShardEnd       bool
	ConsumerID     string // empty is stored as NULL
}

// FactRow is one row of fact_batting_game, plus the player's name and team for
// dim_player. Optional columns are pointers: nil is stored as NULL.
type FactRow struct {
	PlayerID   int64
	PlayerName string
	PlayerTeam string

	GameID     string
	GameDate   time.Time // a date: midnight UTC
	GameNumber int16
	Season     int16
	Opponent   string
	Home       bool

	PlateAppearances     int32
	AtBats               int32
	Runs                 int32
	Hits                 int32
	Singles              int32
	Doubles              int32
	Triples              int32
	HomeRuns             int32
	RBI                  int32
	BaseOnBalls          int32
	IntentionalWalks     int32
	StrikeOuts           int32
	HitByPitch           int32
	SacBunts             int32
	SacFlies             int32
	StolenBases          int32
	CaughtStealing       int32
	GroundIntoDoublePlay int32
	TotalBases           int32
	ExtraBaseHits        int32
	TimesOnBase          int32

	EventID              string
	Version              int64
	SourceTime           *time.Time
	AcceptedAt           *time.Time
	SourceStream         *string
	SourceShardID        *string
	SourceSequenceNumber *string
	TraceID              *string
}

// FactKey identifies a row of fact_batting_game.
type FactKey struct {
	PlayerID int64
	GameID   string
}

// Key returns the row's primary key.
func (r *FactRow) Key() FactKey { return FactKey{PlayerID: r.PlayerID, GameID: r.GameID} }

// FactWrite is a fact row that UpsertFacts inserted (Inserted) or replaced (!Inserted).
type FactWrite struct {
	Key      FactKey
	Inserted bool
}

// PlayerRow is one row of dim_player, with the date of the game it was taken from.
type PlayerRow struct {
	PlayerID     int64
	Name         string
	Team         string
	LastGameDate time.Time
}

// DeadLetter is one rejection for the dead_letter table. Empty Detail, Field and EventID
// are stored as NULL.
type DeadLetter struct {
	Stage          string
	Reason         string
	Detail         string
	Field          string
	EventID        string
	Stream         string
	ShardID        string
	SequenceNumber string
	Payload        []byte
}
