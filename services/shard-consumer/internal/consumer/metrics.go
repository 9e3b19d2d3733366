package consumer

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

type metrics struct {
	read      metric.Int64Counter
	lagMillis metric.Int64Gauge
	batches   metric.Int64Counter
	rejected  metric.Int64Counter
	duration  metric.Float64Histogram
	retries   metric.Int64Counter
	readers   metric.Int64UpDownCounter
	stage     metric.Float64Histogram
	size      metric.Int64Histogram
	stall     metric.Int64Gauge
	bisects   metric.Int64Counter
	gaps      metric.Int64Counter
	heldRecs  metric.Int64Gauge
	heldBytes metric.Int64Gauge
}

func newMetrics(m metric.Meter) (*metrics, error) {
	if m == nil {
		m = noop.Meter{}
	}
	var err, e error
	var out metrics
	if out.read, e = m.Int64Counter("boxscore.consumer.records_read", metric.WithDescription("Records read from the stream."), metric.WithUnit("{record}")); e != nil {
		err = e
	}
	if out.lagMillis, e = m.Int64Gauge("boxscore.consumer.millis_behind_latest", metric.WithDescription("MillisBehindLatest of the shard's last GetRecords."), metric.WithUnit("ms")); e != nil {
		err = e
	}
	if out.batches, e = m.Int64Counter("boxscore.consumer.batches_committed", metric.WithDescription("Batches committed to the warehouse with their checkpoint."), metric.WithUnit("{batch}")); e != nil {
		err = e
	}
	if out.rejected, e = m.Int64Counter("boxscore.consumer.records_rejected", metric.WithDescription("Records the transformer rejected (sent to the dead-letter table)."), metric.WithUnit("{record}")); e != nil {
		err = e
	}
	if out.duration, e = m.Float64Histogram("boxscore.consumer.batch_duration", metric.WithDescription("Time to transform and load one batch."), metric.WithUnit("s")); e != nil {
		err = e
	}
	if out.retries, e = m.Int64Counter("boxscore.consumer.retries", metric.WithDescription("Transient failures retried, by operation."), metric.WithUnit("{retry}")); e != nil {
		err = e
	}
	if out.readers, e = m.Int64UpDownCounter("boxscore.consumer.shards_owned", metric.WithDescription("Shards this consumer is reading."), metric.WithUnit("{shard}")); e != nil {
		err = e
	}
	if out.stage, e = m.Float64Histogram("boxscore.consumer.stage_duration", metric.WithDescription("Time of one stage (transform, load) of one batch, retries included."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)); e != nil {
		err = e
	}
	if out.gaps, e = m.Int64Counter("boxscore.consumer.gaps", metric.WithDescription("Ranges of a shard that were not read (recorded in stream_gap), by reason: trim_horizon (the checkpoint is older than the shard's oldest record), stream_recreated (the checkpoint belonged to an earlier stream of the same name)."), metric.WithUnit("{gap}")); e != nil {
		err = e
	}
	if out.size, e = m.Int64Histogram("boxscore.consumer.batch_records", metric.WithDescription("Records in one committed batch."), metric.WithUnit("{record}"),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)); e != nil {
		err = e
	}
	if out.stall, e = m.Int64Gauge("boxscore.consumer.shard_stalled", metric.WithDescription("1 while the shard is stalled (failing without progress for longer than --stall-after), 0 once it progresses again; by shard and reason."), metric.WithUnit("{shard}")); e != nil {
		err = e
	}
	if out.bisects, e = m.Int64Counter("boxscore.consumer.batches_bisected", metric.WithDescription("Batches split in two because the transformer or the loader refused them permanently, by stage."), metric.WithUnit("{batch}")); e != nil {
		err = e
	}
	if out.heldRecs, e = m.Int64Gauge("boxscore.consumer.read_ahead_records", metric.WithDescription("Records a shard reader holds read and not yet committed (queued answers, the batch being cut, the batch being loaded), bounded by --read-ahead-records; 0 once the reader stops."), metric.WithUnit("{record}")); e != nil {
		err = e
	}
	if out.heldBytes, e = m.Int64Gauge("boxscore.consumer.read_ahead_bytes", metric.WithDescription("Bytes of record data a shard reader holds read and not yet committed; no GetRecords call is made at --read-ahead-bytes or above, so it stays below that plus one answer. 0 once the reader stops."), metric.WithUnit("By")); e != nil {
		err = e
	}
	if err != nil {
		return nil, fmt.Errorf("consumer metrics: %w", err)
	}
	return &out, nil
}

func shardAttr(shardID string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("shard_id", shardID))
}

func (m *metrics) recordsRead(ctx context.Context, shardID string, n int) {
	m.read.Add(ctx, int64(n), shardAttr(shardID))
}

func (m *metrics) lag(ctx context.Context, shardID string, millis int64) {
	m.lagMillis.Record(ctx, millis, shardAttr(shardID))
}

func (m *metrics) batchCommitted(ctx context.Context, shardID string, records, rejected int, d time.Duration) {
	m.batches.Add(ctx, 1, shardAttr(shardID))
	m.size.Record(ctx, int64(records), shardAttr(shardID))
	m.rejected.Add(ctx, int64(rejected), shardAttr(shardID))
	m.duration.Record(ctx, d.Seconds(), shardAttr(shardID))
}

// held records what a shard reader holds read and not yet committed.
func (m *metrics) held(shardID string, records, bytes int) {
	// The budget changes from the fetcher and the reader, neither of which has a context
	// meant for metrics; the gauges take none.
	ctx := context.Background()
	m.heldRecs.Record(ctx, int64(records), shardAttr(shardID))
	m.heldBytes.Record(ctx, int64(bytes), shardAttr(shardID))
}

// stageTook records the duration of one stage of one batch.
func (m *metrics) stageTook(ctx context.Context, stage string, d time.Duration) {
	m.stage.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("stage", stage)))
}

func (m *metrics) retried(ctx context.Context, op string) {
	m.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("operation", op)))
}

// stalled records whether the shard is stalled, for the reason given.
func (m *metrics) stalled(ctx context.Context, shardID, reason string, stalled bool) {
	var v int64
	if stalled {
		v = 1
	}
	m.stall.Record(ctx, v, metric.WithAttributes(attribute.String("shard_id", shardID), attribute.String("reason", reason)))
}

// bisected counts a batch split because the stage refused it permanently.
func (m *metrics) bisected(ctx context.Context, shardID, stage string) {
	m.bisects.Add(ctx, 1, metric.WithAttributes(attribute.String("shard_id", shardID), attribute.String("stage", stage)))
}

// gapFound counts a gap recorded in the warehouse.
func (m *metrics) gapFound(ctx context.Context, shardID, reason string) {
	m.gaps.Add(ctx, 1, metric.WithAttributes(attribute.String("shard_id", shardID), attribute.String("reason", reason)))
}
