package warehouse

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
)

// A load on PostgreSQL goes first through a pipelined path of two round trips, instead of
// the seven of the step-by-step flow (BEGIN, the checkpoint compare-and-set, the savepoint
// and staging table, the COPY, the upsert and release, dim_player, COMMIT):
//
//  1. one simple query: BEGIN, the staging table made sure of, and the COPY of the rows
//     (beginAndCopySQL), the COPY data streamed right behind it;
//  2. one pipeline: the checkpoint compare-and-set (advanceCheckpointOrFailSQL), the gap,
//     the upsert of the facts and players (upsertFactsAndPlayersSQL), the retractions, the
//     dead letters and COMMIT.
//
// The compare-and-set still comes before anything is written: the COPY only fills this
// session's temporary table, and a compare-and-set that matches no row fails its statement
// (division by zero), so the server skips the rest of the pipeline, COMMIT included, and
// the transaction is rolled back. The staging table needs no DELETE: a transaction finds it
// empty, the commits that used it having emptied it (ON COMMIT DELETE ROWS) and the rows
// of a rolled-back one being invisible.
//
// When the database refuses anything with a data error (a row the COPY or the upsert
// refuses, or the failed compare-and-set), the transaction is rolled back and the batch
// goes through the step-by-step flow, which isolates the refused rows (bisection) or reads
// and reports the checkpoint that refused the batch: a redelivered or fenced batch, or one
// with a bad row, costs the pipelined attempt more, a clean one five round trips less. Any
// other error (connection, lock timeout, serialization) is returned as the step-by-step
// flow would return it.

// beginAndCopySQL opens the transaction, creates the session's staging table if needed and
// starts the COPY, in one simple query (statements after BEGIN in one query string stay in
// the transaction it opens).
const beginAndCopySQL = `BEGIN;
CREATE TEMP TABLE IF NOT EXISTS fact_batting_game_staging ` + stagingColumnsSQL + ` ON COMMIT DELETE ROWS;
`

// advanceCheckpointOrFailSQL is advanceCheckpointSQL that fails when it matches no row:
// 1 / count(*) divides by zero (SQLSTATE 22012), which stops the pipeline it heads. moved
// is part of the result so that it is always computed: the LEFT JOIN keeps the count's one
// row even when the update matched none. a.* is checkpointColumns, in scanCheckpoint's order.
const advanceCheckpointOrFailSQL = `
WITH advanced AS (` + advanceCheckpointSQL + `
),
checked AS (SELECT 1 / count(*) AS moved FROM advanced)
SELECT c.moved, a.*
FROM checked c LEFT JOIN advanced a ON true`

// pipelinedWrites is what a pipelined load committed.
type pipelinedWrites struct {
	stored       Checkpoint
	writes       []FactWrite
	retractions  []RetractionWrite
	deadLettered int64
}

// loadPipelined commits b through the pipelined path. It reports false, with no error,
// when the batch must go through the step-by-step flow instead (nothing was committed).
func (s *Store) loadPipelined(ctx context.Context, d *PostgresDialect, b *batch) (*loadv1.LoadResponse, commitResult, bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, commitResult{}, false, fmt.Errorf("acquire connection: %w", err)
	}
	// Released before the step-by-step flow takes a connection of its own. A connection
	// left in a transaction (a rollback that failed) is closed by the pool, not reused.
	defer conn.Release()
	letters := storableLetters(b.letters, 0)
	insertOnly := d.insertOnlyFirst()
	committed, err := d.loadPipelined(ctx, conn.Conn(), b, letters, insertOnly)
	if err != nil && insertOnly && isFactKeyConflict(err) && conn.Conn().PgConn().TxStatus() == 'I' {
		// A staged key is stored already, and the attempt rolled back (the connection is
		// idle, out of any transaction): the same pipeline again, with the upsert. The
		// refused statement's span carries the unique violation; the event on the Load's
		// span says it was expected and followed by the upsert.
		d.upsertNext(insertOnlyBackoff)
		trace.SpanFromContext(ctx).AddEvent("plain insert refused by a stored key, sent again as the upsert")
		s.metrics.recordInsertRefused(ctx)
		committed, err = d.loadPipelined(ctx, conn.Conn(), b, letters, false)
	}
	if err != nil {
		if IsDataError(err) {
			return nil, commitResult{}, false, nil
		}
		return nil, commitResult{}, false, err
	}
	resp, written := tally(b, committed.stored, committed.writes, 0, committed.retractions, letters, committed.deadLettered)
	return resp, written, true, nil
}

// loadPipelined runs the two round trips on conn; on any error the transaction is rolled
// back. letters are b's dead letters, storable. insertOnly writes the facts with
// insertFactsAndPlayersSQL instead of upsertFactsAndPlayersSQL (see insertOnlyFirst).
func (d *PostgresDialect) loadPipelined(ctx context.Context, conn *pgx.Conn, b *batch, letters []DeadLetter, insertOnly bool) (pipelinedWrites, error) {
	copied, err := copyRows(ctx, conn, b.rows, true, beginAndCopySQL+copyFactsSQL)
	if err != nil {
		return pipelinedWrites{}, rollback(ctx, conn, fmt.Errorf("begin and copy rows into staging table: %w", err))
	}
	if copied != int64(len(b.rows)) {
		return pipelinedWrites{}, rollback(ctx, conn, fmt.Errorf("copy rows into staging table: copied %d of %d rows", copied, len(b.rows)))
	}

	cp := b.checkpoint
	pipeline := &pgx.Batch{}
	pipeline.Queue(d.advanceOrFail, cp.Stream, cp.ShardID, cp.Expected, cp.SequenceNumber, cp.ShardEnd, cp.ConsumerID, cp.LeaseToken)
	if b.gap != nil {
		pipeline.Queue(d.insertGap, gapArgs(*b.gap)...)
	}
	if insertOnly {
		pipeline.Queue(d.insertWithPlayers)
	} else {
		pipeline.Queue(d.upsertWithPlayers)
	}
	if len(b.tombstones) > 0 {
		pipeline.Queue(d.applyRetractions, retractionArgs(b.tombstones)...)
	}
	if len(letters) > 0 {
		pipeline.Queue(d.insertDeadLetters, deadLetterArgs(letters)...)
	}
	pipeline.Queue("COMMIT")
	results := conn.SendBatch(ctx, pipeline)
	committed, err := readPipelined(results, b, letters)
	if closeErr := results.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("pipelined load: %w", closeErr)
	}
	if err != nil {
		return pipelinedWrites{}, rollback(ctx, conn, err)
	}
	return committed, nil
}

// readPipelined reads the results of loadPipelined's pipeline, in the order queued.
func readPipelined(results pgx.BatchResults, b *batch, letters []DeadLetter) (pipelinedWrites, error) {
	var out pipelinedWrites
	var moved int64
	err := results.QueryRow().Scan(&moved, &out.stored.Stream, &out.stored.ShardID, &out.stored.SequenceNumber, &out.stored.ShardEnd,
		&out.stored.UpdatedAt, &out.stored.LeaseToken, &out.stored.Owner, &out.stored.StreamIdentity)
	if err != nil {
		return pipelinedWrites{}, fmt.Errorf("compare-and-set checkpoint: %w", err)
	}
	if b.gap != nil {
		if _, err := results.Exec(); err != nil {
			return pipelinedWrites{}, fmt.Errorf("insert stream gap: %w", err)
		}
	}
	if out.writes, err = collectWrites(results); err != nil {
		return pipelinedWrites{}, err
	}
	if len(b.tombstones) > 0 {
		rows, err := results.Query()
		if err != nil {
			return pipelinedWrites{}, fmt.Errorf("apply retractions: %w", err)
		}
		if out.retractions, err = collectRetractions(rows); err != nil {
			return pipelinedWrites{}, err
		}
	}
	if len(letters) > 0 {
		tag, err := results.Exec()
		if err != nil {
			return pipelinedWrites{}, fmt.Errorf("insert dead letters: %w", err)
		}
		out.deadLettered = tag.RowsAffected()
	}
	tag, err := results.Exec()
	if err != nil {
		return pipelinedWrites{}, fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		// A transaction that failed earlier answers COMMIT with ROLLBACK.
		return pipelinedWrites{}, fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
	}
	return out, nil
}

// rollback ends the transaction of a failed pipelined load and returns cause; a rollback
// that fails is joined to it (the pool then closes the connection, left in a transaction).
func rollback(ctx context.Context, conn *pgx.Conn, cause error) error {
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back: %w", err))
	}
	return cause
}

// Most batches bring only new (player, game) keys: a backlog of new games, the day's lines.
// For those, the fact table's ON CONFLICT costs the database a speculative insertion per
// row: a probe of the primary key before the heap insert (an index scan of its own), a
// speculative-insertion lock, and a WAL record to confirm the tuple — about a fifth of
// the backend's CPU per row in BenchmarkLoad500NewDays' profile (perf). A plain INSERT
// checks the key once, while inserting it into the primary key.
//
// So the pipelined path first writes the facts with a plain INSERT
// (insertFactsAndPlayersSQL). When a staged key is stored already (an update, a
// redelivered line, a line inserted meanwhile by a concurrent load), that INSERT fails with
// unique_violation on the primary key, the whole transaction is rolled back (nothing of it
// is kept, the checkpoint included), and the same pipeline is sent again with the upsert:
// what commits is always what the upsert alone would have committed. After such a
// conflict, the next insertOnlyBackoff pipelined loads of the store use the upsert
// directly, so a stream of updates pays the failed attempt once in insertOnlyBackoff + 1
// batches, not every batch.

// insertOnlyBackoff is how many pipelined loads use the upsert directly after a key conflict.
const insertOnlyBackoff = 64

// factPrimaryKey is the fact table's primary key constraint (migration 00002).
const factPrimaryKey = "fact_batting_game_pkey"

// insertOnlyFirst reports whether the next pipelined load tries the plain INSERT first,
// counting one load of the backoff when not.
func (d *PostgresDialect) insertOnlyFirst() bool {
	for {
		n := d.upsertLoads.Load()
		if n <= 0 {
			return true
		}
		if d.upsertLoads.CompareAndSwap(n, n-1) {
			return false
		}
	}
}

// upsertNext makes the next n pipelined loads use the upsert directly.
func (d *PostgresDialect) upsertNext(n int64) { d.upsertLoads.Store(n) }

// isFactKeyConflict reports whether err is a unique violation of the fact table's primary
// key: a staged key the plain INSERT found stored.
func isFactKeyConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == factPrimaryKey
}
