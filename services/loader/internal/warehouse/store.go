// Package warehouse writes curated batting rows, rejections and shard checkpoints into the
// warehouse, one batch per transaction, so that a shard's checkpoint moves only together
// with the data it covers (the exactly-once effect: a redelivered batch is refused by the
// checkpoint compare-and-set, a redelivered row changes nothing).
//
// Store owns the flow; Dialect owns the SQL (see Dialect for the seam and the plan for
// Redshift). Tables are created by the migrations package.
package warehouse

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
)

// Store loads batches into the warehouse. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	dialect Dialect
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

// Load commits one batch of one shard in a single transaction:
//
//  1. compare-and-set the checkpoint from expected_sequence_number to sequence_number
//     (first, so a stale or duplicate batch is refused before any work, and so the
//     checkpoint row lock serializes concurrent loads of one shard);
//  2. upsert the rows, deduplicated by (player_id, game_id): a row replaces the stored one
//     only when its (version, event_id) is greater;
//  3. upsert dim_player from the rows that were written;
//  4. insert the rejections into dead_letter, skipping those already there.
//
// Counts: inserted + updated + unchanged is the number of rows in the request; a row that
// lost to a newer one of the same key in the same batch counts as unchanged.
//
// Errors: *ValidationError (nothing written), *CheckpointMismatchError (nothing written;
// carries the stored checkpoint), otherwise a database error to classify with IsTransient
// and IsDataError. Every error rolls the whole batch back.
func (s *Store) Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	b, err := prepareBatch(req)
	if err != nil {
		return nil, err
	}
	resp := &loadv1.LoadResponse{}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stored, advanced, err := s.dialect.AdvanceCheckpoint(ctx, tx, b.checkpoint)
		if err != nil {
			return err
		}
		if !advanced {
			return &CheckpointMismatchError{Expected: b.checkpoint.Expected, Stored: checkpointProto(stored)}
		}
		resp.Checkpoint = checkpointProto(stored)

		writes, err := s.dialect.UpsertFacts(ctx, tx, b.rows)
		if err != nil {
			return err
		}
		for _, w := range writes {
			if w.Inserted {
				resp.Inserted++
			} else {
				resp.Updated++
			}
		}
		resp.Unchanged = int32(b.received) - resp.Inserted - resp.Updated

		if err := s.dialect.UpsertPlayers(ctx, tx, latestPlayers(b.rows, writes)); err != nil {
			return err
		}

		deadLettered, err := s.dialect.InsertDeadLetters(ctx, tx, b.letters)
		if err != nil {
			return err
		}
		resp.DeadLettered = int32(deadLettered)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s/%s up to %s: %w", req.GetStream(), req.GetShardId(), req.GetSequenceNumber(), err)
	}
	return resp, nil
}

// GetCheckpoint returns the committed checkpoint of a shard; its sequence number is empty
// (and updated_at unset) when the shard has none.
func (s *Store) GetCheckpoint(ctx context.Context, stream, shardID string) (*loadv1.Checkpoint, error) {
	var v violations
	validateShard(&v, stream, shardID)
	if err := v.err(); err != nil {
		return nil, err
	}
	stored, err := s.dialect.ReadCheckpoint(ctx, s.pool, stream, shardID)
	if err != nil {
		return nil, fmt.Errorf("get checkpoint %s/%s: %w", stream, shardID, err)
	}
	return checkpointProto(stored), nil
}

func checkpointProto(c Checkpoint) *loadv1.Checkpoint {
	out := &loadv1.Checkpoint{
		Stream:         c.Stream,
		ShardId:        c.ShardID,
		SequenceNumber: c.SequenceNumber,
		ShardEnd:       c.ShardEnd,
	}
	if !c.UpdatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(c.UpdatedAt)
	}
	return out
}
