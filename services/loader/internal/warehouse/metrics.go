package warehouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// FreshnessBuckets are the bucket bounds of the freshness histogram, in seconds: from 10 ms
// (a batch that found the pipeline idle) to 5 minutes (a shard that fell behind).
var FreshnessBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Outcomes of a Load, the outcome attribute of the batches metric.
const (
	OutcomeCommitted = "committed"
	OutcomeMismatch  = "checkpoint_mismatch"
	OutcomeFenced    = "fenced"
	OutcomeInvalid   = "invalid"
	OutcomeFailed    = "failed"
)

// metrics are the loader's measurements of what it commits.
type metrics struct {
	batches     metric.Int64Counter
	rows        metric.Int64Counter
	deadLetters metric.Int64Counter
	freshness   metric.Float64Histogram
	// insertsRefused counts pipelined loads whose plain INSERT met a stored key and was
	// rolled back and sent again as the upsert (see insertOnlyFirst in pipelined.go).
	insertsRefused metric.Int64Counter
}

func newMetrics(meter metric.Meter) (*metrics, error) {
	var m metrics
	var errs [5]error
	m.batches, errs[0] = meter.Int64Counter("boxscore.loader.batches", metric.WithUnit("{batch}"),
		metric.WithDescription("Load calls by outcome: committed (the checkpoint moved with the data), checkpoint_mismatch, fenced, invalid, failed."))
	m.rows, errs[1] = meter.Int64Counter("boxscore.loader.rows", metric.WithUnit("{row}"),
		metric.WithDescription("Rows of committed batches by outcome: inserted, updated (upserts), unchanged (no-ops: duplicates and stale versions), refused (dead-lettered by the database); retracted (retractions that took effect; the Load response counts them as inserted or updated)."))
	m.deadLetters, errs[2] = meter.Int64Counter("boxscore.loader.dead_letters", metric.WithUnit("{record}"),
		metric.WithDescription("Dead letters committed, by stage and reason."))
	m.freshness, errs[3] = meter.Float64Histogram("boxscore.loader.freshness", metric.WithUnit("s"),
		metric.WithDescription("End-to-end freshness: from the gateway's acceptance of an event to the commit of its row in the warehouse, per row inserted or updated."),
		metric.WithExplicitBucketBoundaries(FreshnessBuckets...))
	m.insertsRefused, errs[4] = meter.Int64Counter("boxscore.loader.inserts_refused", metric.WithUnit("{batch}"),
		metric.WithDescription("Batches whose plain INSERT met a stored key (an update, a redelivered line) and was rolled back and sent again as the upsert; after one, the next 64 batches upsert directly. A cost of updates, not an error."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("warehouse metrics: %w", err)
	}
	return &m, nil
}

// Instrument makes the store record its metrics on meter. Call it once, before the store
// is used; a store never instrumented records nothing.
func (s *Store) Instrument(meter metric.Meter) error {
	m, err := newMetrics(meter)
	if err != nil {
		return err
	}
	s.metrics = m
	return nil
}

// loadOutcome classifies the error of a Load.
func loadOutcome(err error) string {
	var (
		invalid  *ValidationError
		fenced   *FencedError
		mismatch *CheckpointMismatchError
	)
	switch {
	case err == nil:
		return OutcomeCommitted
	case errors.As(err, &invalid):
		return OutcomeInvalid
	case errors.As(err, &fenced):
		return OutcomeFenced
	case errors.As(err, &mismatch):
		return OutcomeMismatch
	default:
		return OutcomeFailed
	}
}

// recordLoad records one Load call. For a committed batch it also records its rows, its
// dead letters, and the freshness of every row it inserted or updated, measured at
// committedAt: a row a no-op left as it was did not become fresher.
func (m *metrics) recordLoad(ctx context.Context, err error, b *batch, resp *commitResult, committedAt time.Time) {
	if m == nil {
		return
	}
	m.batches.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", loadOutcome(err))))
	if err != nil {
		return
	}
	for outcome, n := range map[string]int{"inserted": int(resp.inserted), "updated": int(resp.updated),
		"unchanged": int(resp.unchanged), "refused": resp.refused,
		"retracted": int(resp.retractedInserts + resp.retractedUpdates)} {
		if n > 0 {
			m.rows.Add(ctx, int64(n), metric.WithAttributes(attribute.String("outcome", outcome)))
		}
	}
	type stageReason struct{ stage, reason string }
	letters := map[stageReason]int64{}
	for _, l := range resp.letters {
		letters[stageReason{l.Stage, l.Reason}]++
	}
	for k, n := range letters {
		m.deadLetters.Add(ctx, n, metric.WithAttributes(attribute.String("stage", k.stage), attribute.String("reason", k.reason)))
	}
	acceptedAt := make(map[FactKey]time.Time, len(b.rows))
	for i := range b.rows {
		if at := b.rows[i].AcceptedAt; at != nil {
			acceptedAt[b.rows[i].Key()] = *at
		}
	}
	for _, w := range resp.writes {
		if at, ok := acceptedAt[w.Key]; ok {
			m.freshness.Record(ctx, max(committedAt.Sub(at), 0).Seconds())
		}
	}
}

// recordInsertRefused records one plain INSERT refused by a stored key.
func (m *metrics) recordInsertRefused(ctx context.Context) {
	if m == nil {
		return
	}
	m.insertsRefused.Add(ctx, 1)
}

// commitResult is what one committed Load wrote, for the metrics.
type commitResult struct {
	inserted, updated, unchanged int32
	refused                      int
	// retractedInserts and retractedUpdates are the retractions among the response's
	// inserted and updated.
	retractedInserts, retractedUpdates int32
	writes                             []FactWrite
	letters                            []DeadLetter
}
