package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"google.golang.org/protobuf/types/known/timestamppb"

	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
)

// ReadConfig says how much a shard reader asks Kinesis for, and how much it may hold.
type ReadConfig struct {
	GetRecordsLimit  int `name:"get-records-limit" env:"BOXSCORE_GET_RECORDS_LIMIT" default:"10000" help:"Most records one GetRecords call asks for (Kinesis answers at most 10000); independent of the batch size."`
	ReadAheadRecords int `name:"read-ahead-records" env:"BOXSCORE_READ_AHEAD_RECORDS" default:"3000" help:"Most records a shard reader holds read but not yet committed (the batch being loaded and what is read ahead of it): the memory bound per shard, in records. At least batch-max-records."`
	ReadAheadBytes   int `name:"read-ahead-bytes" env:"BOXSCORE_READ_AHEAD_BYTES" default:"4194304" help:"No GetRecords call is made while a shard reader holds this many bytes of record data read but not yet committed; the bound per shard is this plus one GetRecords answer. At least batch-max-bytes."`
}

// DefaultReadConfig is ReadConfig's flag defaults, for callers that build a Config in code.
//
// 3,000 records a shard: calls of at least 1,500 records, 5 a second, read up to 7,500
// records/s a shard, above Kinesis's 2 MB/s for gateway-sized records (~340 bytes: 6,200
// records/s), while 4 shards hold ~12,000 records. 10,000 (the first default) made the
// consumer the one service above 100 MiB while draining (115 MiB peak RSS in make bench);
// BenchmarkDrainMemory measures both: 68-78 → 42 MiB peak heap, the drain no slower. The
// bytes bound cannot go below batch-max-bytes (4 MiB).
var DefaultReadConfig = ReadConfig{GetRecordsLimit: limits.KinesisGetRecordsRecords, ReadAheadRecords: 3_000, ReadAheadBytes: 4 << 20}

// Validate reports what is wrong with the config for batches cut by batch.
func (c ReadConfig) Validate(batch BatchConfig) error {
	var errs []error
	if c.GetRecordsLimit < 1 || c.GetRecordsLimit > limits.KinesisGetRecordsRecords {
		errs = append(errs, fmt.Errorf("get-records-limit %d is outside 1..%d (Kinesis' most records per GetRecords call)", c.GetRecordsLimit, limits.KinesisGetRecordsRecords))
	}
	// Below one batch, a batch could never fill while the reader waits for room: every
	// batch would wait for its age.
	if c.ReadAheadRecords < batch.MaxRecords {
		errs = append(errs, fmt.Errorf("read-ahead-records %d is below batch-max-records %d", c.ReadAheadRecords, batch.MaxRecords))
	}
	if c.ReadAheadBytes < batch.MaxBytes {
		errs = append(errs, fmt.Errorf("read-ahead-bytes %d is below batch-max-bytes %d", c.ReadAheadBytes, batch.MaxBytes))
	}
	return errors.Join(errs...)
}

// withDefaults fills the fields left zero (a Config built in code) with the flag defaults.
func (c ReadConfig) withDefaults(batch BatchConfig) ReadConfig {
	if c.GetRecordsLimit == 0 {
		c.GetRecordsLimit = DefaultReadConfig.GetRecordsLimit
	}
	if c.ReadAheadRecords == 0 {
		c.ReadAheadRecords = max(DefaultReadConfig.ReadAheadRecords, batch.MaxRecords)
	}
	if c.ReadAheadBytes == 0 {
		c.ReadAheadBytes = max(DefaultReadConfig.ReadAheadBytes, batch.MaxBytes)
	}
	return c
}

// minCallInterval is the least time between two GetRecords calls on a shard: Kinesis
// answers 5 per second per shard, shared by every reader of the shard.
const minCallInterval = time.Second / limits.KinesisShardGetRecordsPerSecond

// readBudget counts what a shard reader holds read from Kinesis and not yet committed:
// pages waiting, the batch being built and the batch being loaded. The fetcher takes from
// it before each GetRecords call and the reader gives back what each commit made durable,
// so the memory of a shard is bounded whatever the batch and GetRecords sizes.
type readBudget struct {
	maxRecords, maxBytes int
	peaks                *heldPeaks // the consumer's, across its readers
	// report, when set, publishes what is held after each change (the read-ahead gauges).
	report func(records, bytes int)

	mu             sync.Mutex
	records, bytes int
	room           chan struct{} // a wake-up for the fetcher after a release
}

func newReadBudget(cfg ReadConfig, peaks *heldPeaks) *readBudget {
	return &readBudget{maxRecords: cfg.ReadAheadRecords, maxBytes: cfg.ReadAheadBytes, peaks: peaks, room: make(chan struct{}, 1)}
}

// heldPeaks is the most records and bytes any one shard reader of a consumer held at
// once, and the largest page read: what the memory bound promises, checked by tests.
type heldPeaks struct {
	mu                            sync.Mutex
	records, bytes, largestAnswer int
}

func (p *heldPeaks) note(records, bytes, answer int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = max(p.records, records)
	p.bytes = max(p.bytes, bytes)
	p.largestAnswer = max(p.largestAnswer, answer)
}

// acquire waits until there is room for a worthwhile GetRecords call and returns how many
// records it may ask for: at most want, and never more than the records bound leaves. It
// waits for room for half the bound (or want, if smaller) rather than asking as soon as
// one batch is committed: with 5 calls per second per shard, many small calls would cap
// the shard far below what one large call reads.
func (b *readBudget) acquire(ctx context.Context, want int) (int, error) {
	needed := min(want, max(b.maxRecords/2, 1))
	for {
		b.mu.Lock()
		free := b.maxRecords - b.records
		if free >= needed && b.bytes < b.maxBytes {
			b.mu.Unlock()
			return min(want, free), nil
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-b.room:
		}
	}
}

// add counts a page read.
func (b *readBudget) add(records, bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records += records
	b.bytes += bytes
	if b.peaks != nil {
		b.peaks.note(b.records, b.bytes, bytes)
	}
	if b.report != nil {
		b.report(b.records, b.bytes)
	}
}

// release gives back what a commit made durable, and wakes the fetcher.
func (b *readBudget) release(records, bytes int) {
	b.mu.Lock()
	b.records -= records
	b.bytes -= bytes
	if b.report != nil {
		b.report(b.records, b.bytes)
	}
	b.mu.Unlock()
	select {
	case b.room <- struct{}{}:
	default:
	}
}

// page is one GetRecords answer as the fetcher hands it to the reader, or the error that
// stopped the fetcher.
type page struct {
	records []*transformv1.SourceRecord
	// caughtUp: the answer says the reader is at the tip of the shard (no time behind, or
	// fewer records than asked for): what is held is flushed rather than left to age.
	caughtUp bool
	shardEnd bool // the shard is closed and this is its last answer
	err      error
}

// fetch reads the shard from iterator (positioned after the sequence number after) and
// sends each answer to pages, in order, until the shard ends, ctx ends or a call fails
// (the failure is sent). It runs while the reader transforms and loads: this is the
// read-ahead, bounded by r.budget. Nothing it reads is committed unless the reader put it
// in a batch that was loaded.
func (r *shardReader) fetch(ctx context.Context, iterator *string, after string, pages chan<- page) {
	send := func(p page) bool {
		select {
		case pages <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		limit, err := r.budget.acquire(ctx, r.c.cfg.Read.GetRecordsLimit)
		if err != nil {
			return
		}
		out, err := r.getRecordsLimit(ctx, iterator, int32(limit))
		if isExpiredIterator(err) {
			// Iterators live five minutes; a long warehouse stall outlives them. Resume
			// right after the last record read (already sent).
			if iterator, err = r.newIterator(ctx, after); err == nil {
				continue
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				send(page{err: fmt.Errorf("get records: %w", err)})
			}
			return
		}
		r.c.stalls.read(r.shardID())
		behind := aws.ToInt64(out.MillisBehindLatest)
		if out.MillisBehindLatest != nil {
			r.c.metrics.lag(ctx, r.shardID(), behind)
		}
		r.c.metrics.recordsRead(ctx, r.shardID(), len(out.Records))
		p := page{
			records:  r.toSources(out.Records),
			caughtUp: behind == 0 || len(out.Records) < limit,
			shardEnd: out.NextShardIterator == nil,
		}
		var bytes int
		for _, src := range p.records {
			bytes += len(src.GetData())
		}
		r.budget.add(len(p.records), bytes)
		if n := len(out.Records); n > 0 {
			after = aws.ToString(out.Records[n-1].SequenceNumber)
		}
		if !send(p) || p.shardEnd {
			return
		}
		iterator = out.NextShardIterator
	}
}

// toSources converts a GetRecords answer for the transformer. The messages of a page are
// allocated together (four allocations a page instead of three a record); they live as
// long as any record of the page is held, which the read budget bounds.
func (r *shardReader) toSources(recs []types.Record) []*transformv1.SourceRecord {
	if len(recs) == 0 {
		return nil
	}
	srcs := make([]transformv1.SourceRecord, len(recs))
	positions := make([]streamv1.RecordPosition, len(recs))
	out := make([]*transformv1.SourceRecord, len(recs))
	var arrivals []timestamppb.Timestamp
	shardID := r.shardID()
	for i := range recs {
		rec, src, pos := &recs[i], &srcs[i], &positions[i]
		pos.Stream = r.c.cfg.Stream
		pos.ShardId = shardID
		pos.SequenceNumber = aws.ToString(rec.SequenceNumber)
		src.Position = pos
		src.PartitionKey = aws.ToString(rec.PartitionKey)
		src.Data = rec.Data
		if at := rec.ApproximateArrivalTimestamp; at != nil {
			if arrivals == nil {
				arrivals = make([]timestamppb.Timestamp, len(recs))
			}
			ts := &arrivals[i]
			ts.Seconds = at.Unix()
			ts.Nanos = int32(at.Nanosecond())
			src.ArrivedAt = ts
		}
		out[i] = src
	}
	return out
}
