// Package retention deletes dead letters older than a configured age, in small batches on a
// timer, so the dead_letter table does not grow without bound and a purge never holds long
// locks nor a long transaction next to the loads.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of a Worker.
const (
	DefaultInterval  = 10 * time.Minute
	DefaultBatchSize = 1000
)

// Worker deletes the dead letters whose created_at is older than MaxAge.
type Worker struct {
	pool      *pgxpool.Pool
	maxAge    time.Duration
	interval  time.Duration
	batchSize int
	logger    *slog.Logger
	purged    metric.Int64Counter
	deleteSQL string
}

// Option configures a Worker.
type Option func(*Worker)

// WithInterval sets the time between two purges (default DefaultInterval).
func WithInterval(d time.Duration) Option { return func(w *Worker) { w.interval = d } }

// WithBatchSize sets how many rows one DELETE removes at most (default DefaultBatchSize).
func WithBatchSize(n int) Option { return func(w *Worker) { w.batchSize = n } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(w *Worker) { w.logger = l } }

// New returns a worker purging dead letters older than maxAge from schema.dead_letter; maxAge
// must be positive (0, keep forever, means: do not start a worker). meter may be nil.
func New(pool *pgxpool.Pool, schema string, maxAge time.Duration, meter metric.Meter, opts ...Option) (*Worker, error) {
	if maxAge <= 0 {
		return nil, fmt.Errorf("retention: the age must be positive, got %s", maxAge)
	}
	w := &Worker{
		pool: pool, maxAge: maxAge, interval: DefaultInterval, batchSize: DefaultBatchSize,
		logger: slog.New(slog.DiscardHandler),
		// The oldest rows first, through dead_letter_created_at_idx (migration 00008); SKIP
		// LOCKED so a purge never waits on a row an operator is marking.
		deleteSQL: `DELETE FROM ` + pgx.Identifier{schema, "dead_letter"}.Sanitize() + ` WHERE id IN (
	SELECT id FROM ` + pgx.Identifier{schema, "dead_letter"}.Sanitize() + `
	WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
	}
	for _, opt := range opts {
		opt(w)
	}
	if w.interval <= 0 || w.batchSize <= 0 {
		return nil, errors.New("retention: the interval and the batch size must be positive")
	}
	if meter != nil {
		c, err := meter.Int64Counter("boxscore.loader.dead_letters_purged", metric.WithUnit("{record}"),
			metric.WithDescription("Dead letters deleted by retention (older than --dead-letter-retention)."))
		if err != nil {
			return nil, fmt.Errorf("retention metrics: %w", err)
		}
		w.purged = c
	}
	return w, nil
}

// Run purges at once, then every interval, until ctx is done. A failed purge is logged and
// tried again at the next tick: retention is housekeeping, never a reason to stop the loader.
func (w *Worker) Run(ctx context.Context) error {
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		if n, err := w.PurgeOnce(ctx); err != nil && ctx.Err() == nil {
			w.logger.WarnContext(ctx, "dead-letter retention failed; retrying at the next tick", "err", err, "purged", n)
		} else if n > 0 {
			w.logger.InfoContext(ctx, "dead letters purged by retention", "purged", n, "older_than", w.maxAge.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// PurgeOnce deletes every dead letter older than the maximum age, in batches of the batch
// size (each its own short transaction), and returns how many it deleted.
func (w *Worker) PurgeOnce(ctx context.Context) (int64, error) {
	cutoff := time.Now().Add(-w.maxAge)
	var total int64
	for {
		tag, err := w.pool.Exec(ctx, w.deleteSQL, cutoff, w.batchSize)
		if err != nil {
			return total, fmt.Errorf("purge dead letters older than %s: %w", cutoff.Format(time.RFC3339), err)
		}
		n := tag.RowsAffected()
		total += n
		if w.purged != nil && n > 0 {
			w.purged.Add(ctx, n)
		}
		if n < int64(w.batchSize) {
			return total, nil
		}
	}
}

// Age is the type of the loader's --dead-letter-retention flag: a duration, 0 to keep dead
// letters forever.
type Age = time.Duration

// Runner returns the loader's retention worker for svc.Server.AddWorker: nothing to do when
// maxAge is 0 (keep forever), an error (which stops the loader at start) when it is negative
// or the worker cannot be built, otherwise Worker.Run.
func Runner(pool *pgxpool.Pool, schema string, maxAge Age, meter metric.Meter, logger *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		if maxAge == 0 {
			logger.InfoContext(ctx, "dead-letter retention off: dead letters are kept forever")
			return nil
		}
		if maxAge < 0 {
			return fmt.Errorf("--dead-letter-retention must be 0 (keep forever) or positive, got %s", maxAge)
		}
		w, err := New(pool, schema, maxAge, meter, WithLogger(logger))
		if err != nil {
			return err
		}
		return w.Run(ctx)
	}
}
