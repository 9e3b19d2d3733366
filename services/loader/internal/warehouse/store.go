// Package warehouse writes curated batting rows, rejections and shard checkpoints into the
// warehouse, one batch per transaction, so that a shard's checkpoint moves only together
// with the data it covers (the exactly-once effect: a redelivered batch is refused by the
// checkpoint compare-and-set, a redelivered row changes nothing), and a consumer that lost
// its lease on the shard cannot commit at all (the lease token fences it off).
//
// Store owns the flow on PostgreSQL, Dialect its SQL; RedshiftStore loads into Amazon
// Redshift (S3 staging, COPY, MERGE, one transaction per window of batches). Tables are
// created by the migrations package (migrations.PostgreSQL, migrations.Redshift).
package warehouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
)

// Store loads batches into the warehouse. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	dialect Dialect
	metrics *metrics // nil: not instrumented
}

// NewStore returns a Store writing to the PostgreSQL tables in schema (migrated by
// migrations.Apply).
func NewStore(pool *pgxpool.Pool, schema string) (*Store, error) {
	dialect, err := NewPostgresDialect(schema)
	if err != nil {
		return nil, err
	}
	return NewStoreWithDialect(pool, dialect), nil
}

// NewStoreWithDialect returns a Store that writes through dialect.
func NewStoreWithDialect(pool *pgxpool.Pool, dialect Dialect) *Store {
	return &Store{pool: pool, dialect: dialect}
}

// ClaimShard records that req.Owner now reads req's shard under the lease whose fencing
// token is req.LeaseToken, and returns the checkpoint to resume from; see Claim.
func (s *Store) ClaimShard(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.Checkpoint, error) {
	resp, err := s.Claim(ctx, req)
	return resp.GetCheckpoint(), err
}

// Claim records that req.Owner now reads req's shard under the lease whose fencing token
// is req.LeaseToken, and returns the checkpoint to resume from. It creates the checkpoint
// row of a shard never claimed (sequence number empty: nothing committed yet). A claim
// succeeds when its token is greater than the stored one, or equal to it with the same
// owner (a claim retried after its answer was lost); from then on only Loads carrying
// that token commit.
//
// Stream identity: a claim naming req.StreamIdentity ties the checkpoint to it. When the
// stored checkpoint belongs to another identity (the stream was deleted and created again
// under the same name), its position means nothing in the stream now read: in the claim's
// transaction the old checkpoint is archived in stream_gap (reason stream_recreated) and
// the shard starts over (sequence number empty, not finished); the response's Reset
// describes it. A stored checkpoint without identity (written before identities, or by a
// consumer that does not send one) adopts the claim's.
//
// Errors: *ValidationError (token not positive, owner or shard missing), *FencedError
// (nothing written; carries the stored checkpoint, with the token that refused the
// claim), otherwise a database error to classify with IsTransient.
func (s *Store) Claim(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error) {
	return claimShard(ctx, s.pool, pgx.TxOptions{}, s.dialect, req)
}

// checkpointDialect is the part of a dialect a claim and a checkpoint read need: the
// PostgreSQL and Redshift dialects both have it, so Claim's flow is written once.
type checkpointDialect interface {
	ClaimShard(ctx context.Context, tx pgx.Tx, claim Claim) (stored Checkpoint, claimed bool, err error)
	ReadCheckpoint(ctx context.Context, q Querier, stream, shardID string) (Checkpoint, error)
	SetStreamIdentity(ctx context.Context, tx pgx.Tx, stream, shardID, identity string, reset bool) (Checkpoint, error)
	InsertGap(ctx context.Context, tx pgx.Tx, gap Gap) error
}

// claimShard is Claim (see Store.Claim) through dialect d, in one transaction begun with
// txOptions.
func claimShard(ctx context.Context, pool *pgxpool.Pool, txOptions pgx.TxOptions, d checkpointDialect, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error) {
	claim := Claim{Stream: req.GetStream(), ShardID: req.GetShardId(), LeaseToken: req.GetLeaseToken(), Owner: req.GetOwner(),
		StreamIdentity: req.GetStreamIdentity()}
	if err := validateClaim(claim); err != nil {
		return nil, err
	}
	var resp *loadv1.ClaimShardResponse
	err := pgx.BeginTxFunc(ctx, pool, txOptions, func(tx pgx.Tx) error {
		resp = nil // a retried transaction function starts over
		stored, ok, err := d.ClaimShard(ctx, tx, claim)
		if err != nil {
			return err
		}
		if !ok {
			return &FencedError{Op: "claim", LeaseToken: claim.LeaseToken, Stored: checkpointProto(stored)}
		}
		var reset *loadv1.StreamGap
		if claim.StreamIdentity != "" && stored.StreamIdentity != claim.StreamIdentity {
			recreated := stored.StreamIdentity != ""
			if recreated {
				gap := Gap{
					Stream: claim.Stream, ShardID: claim.ShardID, Reason: GapStreamRecreated,
					AfterSequenceNumber: stored.SequenceNumber,
					OldStreamIdentity:   stored.StreamIdentity, StreamIdentity: claim.StreamIdentity,
					ConsumerID: claim.Owner, Old: stored,
					Detail: "the stream was deleted and created again under the same name: the checkpoint of the earlier stream is archived and the shard starts over from its oldest record",
				}
				if err := d.InsertGap(ctx, tx, gap); err != nil {
					return err
				}
				reset = gapProto(gap)
			}
			if stored, err = d.SetStreamIdentity(ctx, tx, claim.Stream, claim.ShardID, claim.StreamIdentity, recreated); err != nil {
				return err
			}
		}
		resp = &loadv1.ClaimShardResponse{Checkpoint: checkpointProto(stored), Archived: reset}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s/%s with lease token %d for %q: %w", claim.Stream, claim.ShardID, claim.LeaseToken, claim.Owner, err)
	}
	return resp, nil
}

// gapProto converts a gap for the wire.
func gapProto(g Gap) *loadv1.StreamGap {
	return &loadv1.StreamGap{
		Reason: g.Reason, AfterSequenceNumber: g.AfterSequenceNumber, BeforeSequenceNumber: g.BeforeSequenceNumber,
		OldStreamIdentity: g.OldStreamIdentity, StreamIdentity: g.StreamIdentity, Detail: g.Detail,
	}
}

// Load commits one batch of one shard in a single transaction:
//
//  1. compare-and-set the checkpoint from expected_sequence_number to sequence_number,
//     under the batch's lease token (first, so a stale, duplicate or fenced batch is
//     refused before any work, and so the checkpoint row lock serializes concurrent loads
//     and claims of one shard);
//  2. upsert the rows, deduplicated by (player_id, game_id): a row replaces the stored one
//     only when its (version, event_id) is greater. If the database refuses the data (a
//     data error, SQLSTATE class 22 or 23), the rows are bisected under savepoints until
//     each refused row is isolated; the others are written;
//  3. apply the retractions (rows with retraction set, tombstones): one whose
//     (version, event_id) is above both the stored line's and the stored tombstone's
//     deletes the line and is recorded in batting_game_retraction; a line is stored only
//     above its key's tombstone (step 2), so a retracted line comes back only with a newer
//     version. A key's lines and retractions in one batch are settled first: only the
//     greatest (version, event_id) of them is applied;
//  4. upsert dim_player from the rows that were written;
//  5. insert the rejections and the refused rows (stage "load") into dead_letter, skipping
//     those already there.
//
// Counts: inserted + updated + unchanged + the rows refused by the database is the number
// of rows in the request; a row that lost to a newer one of the same key in the same batch
// counts as unchanged. A retraction that took effect counts as updated when it removed a
// line or replaced an older tombstone, as inserted otherwise; one that did not (older, or
// redelivered) as unchanged. dead_lettered counts the dead letters newly stored, of both kinds.
//
// Errors: *ValidationError (nothing written), *FencedError (the stored lease token is not
// the batch's; nothing written), *CheckpointMismatchError (nothing written; carries the
// stored checkpoint), otherwise a database error to classify with IsTransient and
// IsDataError. Every error rolls the whole batch back; a transient error during the upsert
// is never bisected nor dead-lettered.
//
// On PostgreSQL a batch with rows is first tried in two round trips (pipelined.go), with the
// same effects; one the database refuses anything of is then loaded step by step.
func (s *Store) Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	b, err := prepareBatch(req)
	if err != nil {
		s.metrics.recordLoad(ctx, err, nil, nil, time.Time{})
		return nil, err
	}
	var (
		resp      *loadv1.LoadResponse
		written   commitResult
		pipelined bool
	)
	if d, ok := s.dialect.(*PostgresDialect); ok && len(b.rows) > 0 {
		resp, written, pipelined, err = s.loadPipelined(ctx, d, b)
	}
	if !pipelined && err == nil {
		resp, written, err = s.loadStepByStep(ctx, b)
	}
	// The metric counts retractions under an outcome of their own.
	if resp != nil {
		written.inserted, written.updated, written.unchanged = resp.Inserted-written.retractedInserts, resp.Updated-written.retractedUpdates, resp.Unchanged
	}
	s.metrics.recordLoad(ctx, err, b, &written, time.Now())
	if err != nil {
		return nil, fmt.Errorf("load %s/%s up to %s: %w", req.GetStream(), req.GetShardId(), req.GetSequenceNumber(), err)
	}
	recordRefused(trace.SpanFromContext(ctx), written.letters)
	return resp, nil
}

// loadStepByStep is Load one statement after the other in a transaction (see Load), where
// each step decides the next: the refused rows isolated by bisection, the checkpoint that
// refused the batch read and reported.
func (s *Store) loadStepByStep(ctx context.Context, b *batch) (*loadv1.LoadResponse, commitResult, error) {
	var (
		resp    *loadv1.LoadResponse
		written commitResult
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		resp, written = nil, commitResult{} // a retried transaction function starts over
		stored, advanced, err := s.dialect.AdvanceCheckpoint(ctx, tx, b.checkpoint)
		if err != nil {
			return err
		}
		if !advanced {
			if stored.LeaseToken != b.checkpoint.LeaseToken {
				return &FencedError{Op: "load", LeaseToken: b.checkpoint.LeaseToken, Stored: checkpointProto(stored)}
			}
			return &CheckpointMismatchError{Expected: b.checkpoint.Expected, Stored: checkpointProto(stored)}
		}
		if b.gap != nil {
			if err := s.dialect.InsertGap(ctx, tx, *b.gap); err != nil {
				return err
			}
		}

		writes, refused, playersWritten, err := s.upsertIsolating(ctx, tx, b.rows, true)
		if err != nil {
			return err
		}
		retractions, err := s.dialect.ApplyRetractions(ctx, tx, b.tombstones)
		if err != nil {
			return err
		}
		if !playersWritten {
			if err := s.dialect.UpsertPlayers(ctx, tx, latestPlayers(b.rows, writes)); err != nil {
				return err
			}
		}

		letters := storableLetters(b.letters, len(refused))
		for _, r := range refused {
			letters = append(letters, refusedLetter(r, b.checkpoint).storable())
		}
		deadLettered, err := s.dialect.InsertDeadLetters(ctx, tx, letters)
		if err != nil {
			return err
		}
		resp, written = tally(b, stored, writes, len(refused), retractions, letters, deadLettered)
		return nil
	})
	if err != nil {
		return nil, commitResult{}, err
	}
	return resp, written, nil
}

// storableLetters returns the batch's dead letters made storable, with room for extra more.
func storableLetters(batchLetters []DeadLetter, extra int) []DeadLetter {
	letters := make([]DeadLetter, 0, len(batchLetters)+extra)
	for _, l := range batchLetters {
		letters = append(letters, l.storable())
	}
	return letters
}

// tally is the response of a committed load and what it wrote (see Load for the counts):
// stored is the checkpoint it moved to, writes the rows written, refused the number of rows
// the database refused, letters the dead letters sent and deadLettered those newly stored.
func tally(b *batch, stored Checkpoint, writes []FactWrite, refused int, retractions []RetractionWrite,
	letters []DeadLetter, deadLettered int64,
) (*loadv1.LoadResponse, commitResult) {
	resp := &loadv1.LoadResponse{Checkpoint: checkpointProto(stored), DeadLettered: int32(deadLettered)}
	var written commitResult
	for _, w := range writes {
		if w.Inserted {
			resp.Inserted++
		} else {
			resp.Updated++
		}
	}
	for _, w := range retractions {
		if w.Removed || w.Replaced {
			resp.Updated++
			written.retractedUpdates++
		} else {
			resp.Inserted++
			written.retractedInserts++
		}
	}
	resp.Unchanged = int32(b.received) - resp.Inserted - resp.Updated - int32(refused) - int32(b.tooLong)
	written.writes, written.refused, written.letters = writes, refused+b.tooLong, letters
	return resp, written
}

// recordRefused puts a dead_letter event on the span of the load (the Load call's server
// span, in the batch's trace) for each row the warehouse refused, once committed. The
// transformer's rejections are recorded by the consumer, on the batch span that holds them.
func recordRefused(span trace.Span, letters []DeadLetter) {
	for _, l := range letters {
		if l.Stage != StageLoad {
			continue
		}
		deadletter.Record(span, deadletter.Letter{
			Stream: l.Stream, ShardID: l.ShardID, SequenceNumber: l.SequenceNumber,
			EventID: l.EventID, Stage: l.Stage, Reason: l.Reason, Field: l.Field,
		})
	}
}

// refusedRow is a row the database refused, with its reason.
type refusedRow struct {
	row *FactRow
	err *pgconn.PgError
}

// upsertIsolating writes rows and returns what was written and the rows the database
// refused. The whole slice is tried first, so a clean batch costs one upsert. When it is
// refused with a data error (the dialect has then rolled it back), each half is tried
// alone, recursively, down to single rows: k bad rows among n cost O(k log n) upserts, not
// n. Any other error (connection, serialization, timeout) is returned as is: it fails the
// whole load, and nothing is dead-lettered for it. The halves keep the key order, so locks
// are still taken in key order.
//
// With players, the whole slice's upsert also records the players of the rows written
// (one statement instead of two, for the common batch the database takes whole), and
// playersWritten reports that it did. The parts of a bisection never do: the caller then
// upserts the players of all the rows written at once, so the latest game among them wins
// as it would without bisection, not the latest of the last part.
func (s *Store) upsertIsolating(ctx context.Context, tx pgx.Tx, rows []FactRow, players bool) (writes []FactWrite, refused []refusedRow, playersWritten bool, err error) {
	writes, err = s.dialect.UpsertFacts(ctx, tx, rows, players)
	if err == nil {
		return writes, nil, players, nil
	}
	var pgErr *pgconn.PgError
	if !IsDataError(err) || !errors.As(err, &pgErr) {
		return nil, nil, false, err
	}
	if len(rows) == 1 {
		return nil, []refusedRow{{row: &rows[0], err: pgErr}}, false, nil
	}
	half := len(rows) / 2
	firstWrites, firstRefused, _, err := s.upsertIsolating(ctx, tx, rows[:half], false)
	if err != nil {
		return nil, nil, false, err
	}
	secondWrites, secondRefused, _, err := s.upsertIsolating(ctx, tx, rows[half:], false)
	if err != nil {
		return nil, nil, false, err
	}
	return append(firstWrites, secondWrites...), append(firstRefused, secondRefused...), false, nil
}

// columnInWhere finds the column PostgreSQL names in the context of a COPY error
// ("COPY fact_batting_game_staging, line 3, column opponent"), which carries no column
// name field.
var columnInWhere = regexp.MustCompile(`column ([a-z_][a-z0-9_]*)`)

// refusedLetter is the dead letter of a row the database refused: stage "load", reason
// the SQLSTATE, the database's message, the column or constraint when known, and the row
// as sent (see rowLetter). Its text is made storable by the caller: the event id may hold
// the very byte the database refused (NUL).
func refusedLetter(r refusedRow, cp CheckpointUpdate) DeadLetter {
	field := r.err.ColumnName
	if field == "" {
		field = r.err.ConstraintName
	}
	if field == "" {
		if m := columnInWhere.FindStringSubmatch(r.err.Where); m != nil {
			field = m[1]
		}
	}
	letter := rowLetter(r.row, cp)
	letter.Reason = "sqlstate_" + r.err.Code
	letter.Detail = r.err.Message
	letter.Field = field
	return letter
}

// StageLoad is the dead_letter stage of rows the warehouse refused.
const StageLoad = deadletter.StageLoad

// GetCheckpoint returns the stored checkpoint of a shard, with its lease token and owner;
// its sequence number is empty (and updated_at unset) when nothing was committed.
func (s *Store) GetCheckpoint(ctx context.Context, stream, shardID string) (*loadv1.Checkpoint, error) {
	return getCheckpoint(ctx, s.pool, s.dialect, stream, shardID)
}

func getCheckpoint(ctx context.Context, q Querier, d checkpointDialect, stream, shardID string) (*loadv1.Checkpoint, error) {
	var v violations
	validateShard(&v, stream, shardID)
	if err := v.err(); err != nil {
		return nil, err
	}
	stored, err := d.ReadCheckpoint(ctx, q, stream, shardID)
	if err != nil {
		return nil, fmt.Errorf("get checkpoint %s/%s: %w", stream, shardID, err)
	}
	return checkpointProto(stored), nil
}

// checkpointProto converts a stored checkpoint. updated_at is set only once something was
// committed: a claim alone creates the row but commits no position.
func checkpointProto(c Checkpoint) *loadv1.Checkpoint {
	out := &loadv1.Checkpoint{
		Stream:         c.Stream,
		ShardId:        c.ShardID,
		SequenceNumber: c.SequenceNumber,
		ShardEnd:       c.ShardEnd,
		LeaseToken:     c.LeaseToken,
		Owner:          c.Owner,
		StreamIdentity: c.StreamIdentity,
	}
	if c.SequenceNumber != "" && !c.UpdatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(c.UpdatedAt)
	}
	return out
}
