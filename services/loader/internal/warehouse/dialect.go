package warehouse

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// Dialect is the seam between the Load flow and one warehouse engine: every statement that
// depends on the engine lives behind it, and Store.Load only decides what to write and in
// which order, inside the transaction it owns.
//
// PostgresDialect is the implementation for PostgreSQL: rows go through COPY FROM STDIN
// into a temporary staging table, then one INSERT ... ON CONFLICT upserts them.
//
// Redshift does not fit this seam: it has no COPY FROM STDIN, no ON CONFLICT, no SAVEPOINT
// and no enforced keys, and a COPY costs a second or more, so its loads are batched across
// shards. RedshiftStore (redshift.go) owns that flow and RedshiftDialect its statements;
// what both engines share (validation, counts, claims, checkpoint reads, dead-letter
// rules, metrics) is written once and used by both stores.
//
// Contract shared by every implementation:
//   - every method runs inside tx and writes nothing outside it;
//   - UpsertFacts receives rows unique by (player_id, game_id), sorted by that key;
//   - a row replaces the stored one only when its (version, event_id) is greater, with
//     event_id compared byte-wise (COLLATE "C"), the order compareVersions uses;
//   - when UpsertFacts fails with a data error (IsDataError), none of its rows is written
//     and tx is still usable, so Store can retry a part of the rows (bisection); after any
//     other error tx is not usable;
//   - UpsertFacts also leaves out a row whose (version, event_id) is not above the
//     tombstone stored for its key (batting_game_retraction): a retracted line comes back
//     only with a newer version;
//   - ApplyRetractions receives tombstones unique by key, sorted, none sharing a key with
//     the rows of the same batch; it applies one only when its (version, event_id) is above
//     both the stored line's and the stored tombstone's: it deletes the line and stores the
//     tombstone. The caller checked every value it writes, so it meets no data error;
//   - InsertDeadLetters skips rejections already stored for the same position and stage,
//     and those already stored for the same (event id, event version, stage, reason) when
//     the version is known (not 0), duplicates inside letters included;
//   - AdvanceCheckpoint moves a checkpoint only under the stored lease token, and never one
//     whose shard_end is set;
//   - ClaimShard only ever raises a shard's lease token.
type Dialect interface {
	// ClaimShard records that claim.Owner now holds claim's shard under claim.LeaseToken:
	// it creates the checkpoint row of a shard never claimed (sequence number empty) and
	// stores the token and owner if the token is greater than the stored one, or equal to
	// it with the same owner (a retried claim). It reports whether the claim was recorded;
	// stored is the checkpoint after the claim, or the one that refused it.
	ClaimShard(ctx context.Context, tx pgx.Tx, claim Claim) (stored Checkpoint, claimed bool, err error)
	// AdvanceCheckpoint moves the checkpoint of update's shard from update.Expected to
	// update.SequenceNumber, provided the stored lease token is update.LeaseToken. An empty
	// Expected means nothing may have been committed yet. It reports whether the checkpoint
	// moved; when it did not, stored is the checkpoint found (SequenceNumber empty and
	// LeaseToken 0 when the shard has no row).
	AdvanceCheckpoint(ctx context.Context, tx pgx.Tx, update CheckpointUpdate) (stored Checkpoint, advanced bool, err error)
	// UpsertFacts writes rows into fact_batting_game and returns the keys it inserted or
	// replaced; rows left unchanged are not returned. With players it also records the
	// players of the rows it wrote, as UpsertPlayers(latestPlayers(rows, writes)) does. On a
	// data error it writes none of the rows (nor players) and leaves tx usable (see the
	// contract above).
	UpsertFacts(ctx context.Context, tx pgx.Tx, rows []FactRow, players bool) ([]FactWrite, error)
	// ApplyRetractions applies tombstones (see the contract above) and returns the keys of
	// those that took effect; the others are not returned.
	ApplyRetractions(ctx context.Context, tx pgx.Tx, tombstones []Tombstone) ([]RetractionWrite, error)
	// UpsertPlayers records the name and team of each player unless the stored ones come
	// from a later game.
	UpsertPlayers(ctx context.Context, tx pgx.Tx, players []PlayerRow) error
	// InsertDeadLetters writes rejections and returns how many were new.
	InsertDeadLetters(ctx context.Context, tx pgx.Tx, letters []DeadLetter) (int64, error)
	// ReadCheckpoint returns the checkpoint of a shard; SequenceNumber is empty when
	// nothing was committed, LeaseToken 0 when the shard was never claimed.
	ReadCheckpoint(ctx context.Context, q Querier, stream, shardID string) (Checkpoint, error)
	// SetStreamIdentity ties a shard's checkpoint to the identity of the stream it belongs
	// to. With reset, the checkpoint also starts over: sequence number empty, shard not
	// finished (the caller archived the old one as a gap first). It returns the checkpoint
	// as stored.
	SetStreamIdentity(ctx context.Context, tx pgx.Tx, stream, shardID, identity string, reset bool) (Checkpoint, error)
	// InsertGap records a range of a shard that was not read (stream_gap).
	InsertGap(ctx context.Context, tx pgx.Tx, gap Gap) error
}

// Gap is a row of stream_gap: a range of a shard that was not read, and why.
type Gap struct {
	Stream               string
	ShardID              string
	Reason               string // GapTrimHorizon or GapStreamRecreated
	AfterSequenceNumber  string
	BeforeSequenceNumber string
	OldStreamIdentity    string
	StreamIdentity       string
	Detail               string
	ConsumerID           string
	// The archived checkpoint (stream_recreated: its shard_end and updated_at are kept);
	// zero for trim_horizon.
	Old Checkpoint
}

// Gap reasons.
const (
	// GapTrimHorizon: the checkpoint was older than the shard's oldest record.
	GapTrimHorizon = "trim_horizon"
	// GapStreamRecreated: the checkpoint belonged to an earlier stream of the same name.
	GapStreamRecreated = "stream_recreated"
)

// Querier runs a single-row query: a *pgxpool.Pool or a pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Checkpoint is a stored shard position and the lease it is fenced by.
type Checkpoint struct {
	Stream         string
	ShardID        string
	SequenceNumber string // empty when nothing was committed yet
	ShardEnd       bool
	UpdatedAt      time.Time // when the row was last written; zero when there is no row
	LeaseToken     int64     // 0 when the shard was never claimed
	Owner          string    // empty when the shard was never claimed
	StreamIdentity string    // identity of the stream SequenceNumber belongs to; empty when unknown
}

// Claim is a consumer taking a shard under a lease.
type Claim struct {
	Stream     string
	ShardID    string
	LeaseToken int64
	Owner      string
	// StreamIdentity is the identity of the stream the claimer reads (empty: unchecked).
	StreamIdentity string
}

// CheckpointUpdate is a compare-and-set of a shard position, fenced by a lease token.
type CheckpointUpdate struct {
	Stream         string
	ShardID        string
	Expected       string // empty: nothing may have been committed yet
	SequenceNumber string
	ShardEnd       bool
	ConsumerID     string // empty is stored as NULL
	LeaseToken     int64  // must equal the stored token
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
	Producer             *string

	// source is the request's row, kept to dead-letter it as sent if the database refuses it.
	source *warehousev1.BattingGameRow
}

// Tombstone is a retraction of one (player, game) line, for batting_game_retraction.
// Optional columns are pointers: nil is stored as NULL.
type Tombstone struct {
	PlayerID             int64
	GameID               string
	Version              int64
	EventID              string
	Producer             *string
	Reason               string
	SourceTime           *time.Time
	AcceptedAt           *time.Time
	SourceStream         *string
	SourceShardID        *string
	SourceSequenceNumber *string
	TraceID              *string

	// source is the request's row, kept to dead-letter it as sent.
	source *warehousev1.BattingGameRow
}

// Key returns the key of the line the tombstone retracts.
func (t *Tombstone) Key() FactKey { return FactKey{PlayerID: t.PlayerID, GameID: t.GameID} }

// RetractionWrite is a tombstone that took effect: Removed when it deleted a stored line,
// Replaced when it replaced an older tombstone of the key.
type RetractionWrite struct {
	Key      FactKey
	Removed  bool
	Replaced bool
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
// are stored as NULL, and so is an EventVersion of 0 (unknown), a Subject without player
// and an empty Subject.GameID. Store.Load makes its text storable (storableText) before a
// dialect sees it.
type DeadLetter struct {
	Stage          string
	Reason         string
	Detail         string
	Field          string
	EventID        string
	EventVersion   int64 // 0: unknown, or EventID is not the event's id verbatim
	Stream         string
	ShardID        string
	SequenceNumber string
	Payload        []byte
	// Producer is the record's authenticated producer; empty (NULL) when unknown.
	Producer string
	// Subject is the player and game of the record, stored in player_id and game_id with
	// payload_indexed true: decoded from the payload (deadletter.DecodePayload, the rule
	// `boxscore dlq` applies to rows an older loader wrote), or taken from the row the
	// warehouse refused.
	Subject deadletter.Subject
}
