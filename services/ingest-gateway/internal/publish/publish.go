// Package publish puts stat events into the Kinesis stream: one envelope record per event,
// partitioned by player, with PutRecords.
//
// PutRecords is not atomic: a call can succeed while some of its entries fail
// (ProvisionedThroughputExceededException, InternalFailure). The publisher resends only the
// failed entries, with capped exponential backoff and jitter, within a bounded retry budget,
// and never reports an event as acknowledged unless Kinesis returned its shard and sequence
// number. It also bounds the batches and bytes it holds in flight, and refuses new work with
// a BusyError rather than queueing it.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// Kinesis limits of one PutRecords call and one record (pkg/limits).
const (
	MaxBatchEvents = limits.KinesisPutRecordsEntries
	MaxCallBytes   = limits.KinesisPutRecordsBytes // data plus partition keys of all entries of one call
	MaxRecordBytes = limits.KinesisRecordBytes     // data plus partition key of one record
)

const instrumentationName = "github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"

// Config bounds the publisher's retries and memory.
type Config struct {
	RetryBudget        time.Duration `name:"publish-retry-budget" env:"BOXSCORE_PUBLISH_RETRY_BUDGET" default:"10s" help:"Longest time one batch may spend in PutRecords calls and retries before the request fails with 503; keep it well under clients' timeouts."`
	AttemptTimeout     time.Duration `name:"publish-attempt-timeout" env:"BOXSCORE_PUBLISH_ATTEMPT_TIMEOUT" default:"3s" help:"Timeout of one PutRecords call."`
	InitialBackoff     time.Duration `name:"publish-initial-backoff" env:"BOXSCORE_PUBLISH_INITIAL_BACKOFF" default:"50ms" help:"Wait before the first resend; doubles per attempt, with jitter."`
	MaxBackoff         time.Duration `name:"publish-max-backoff" env:"BOXSCORE_PUBLISH_MAX_BACKOFF" default:"1s" help:"Cap of the wait between resends."`
	MaxInFlightBatches int           `name:"publish-max-inflight-batches" env:"BOXSCORE_PUBLISH_MAX_INFLIGHT_BATCHES" default:"64" help:"Batches that may be publishing at once; more are refused as busy."`
	MaxInFlightBytes   int64         `name:"publish-max-inflight-bytes" env:"BOXSCORE_PUBLISH_MAX_INFLIGHT_BYTES" default:"67108864" help:"Bytes (request bodies being read, then encoded records) that may be in flight at once; more are refused as busy."`
	// MaxInFlightBytesPerProducer keeps one producer (its slow or huge uploads) from taking
	// the whole budget: others always find room.
	MaxInFlightBytesPerProducer int64 `name:"publish-max-inflight-bytes-per-producer" env:"BOXSCORE_PUBLISH_MAX_INFLIGHT_BYTES_PER_PRODUCER" default:"0" help:"Bytes of the in-flight budget one producer may hold at once (0: half of --publish-max-inflight-bytes); more of its requests are refused as busy."`
}

// producerBytes is the in-flight bytes one producer may hold.
func (c Config) producerBytes() int64 {
	if c.MaxInFlightBytesPerProducer > 0 {
		return c.MaxInFlightBytesPerProducer
	}
	return max(c.MaxInFlightBytes/2, MaxCallBytes)
}

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	var errs []error
	if c.RetryBudget <= 0 {
		errs = append(errs, errors.New("publish-retry-budget must be positive"))
	}
	if c.AttemptTimeout <= 0 {
		errs = append(errs, errors.New("publish-attempt-timeout must be positive"))
	}
	if c.InitialBackoff <= 0 || c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("publish backoff must satisfy 0 < initial (%s) <= max (%s)", c.InitialBackoff, c.MaxBackoff))
	}
	if c.MaxInFlightBatches < 1 {
		errs = append(errs, errors.New("publish-max-inflight-batches must be at least 1"))
	}
	// One full batch must always fit, or a large request could never be admitted.
	if c.MaxInFlightBytes < MaxCallBytes {
		errs = append(errs, fmt.Errorf("publish-max-inflight-bytes must be at least %d", MaxCallBytes))
	}
	if c.MaxInFlightBytesPerProducer != 0 && (c.MaxInFlightBytesPerProducer < MaxCallBytes || c.MaxInFlightBytesPerProducer > c.MaxInFlightBytes) {
		errs = append(errs, fmt.Errorf("publish-max-inflight-bytes-per-producer must be 0 or between %d and publish-max-inflight-bytes", MaxCallBytes))
	}
	return errors.Join(errs...)
}

// Result is the fate of one event of a batch.
type Result struct {
	// Index is the event's position in the batch.
	Index int
	// EventID is the event's id.
	EventID string
	// ShardID and SequenceNumber are where Kinesis put the record; both are empty for an
	// event Kinesis did not acknowledge.
	ShardID        string
	SequenceNumber string
	// ErrorCode and ErrorMessage describe the last failure of an event that was not
	// acknowledged.
	ErrorCode    string
	ErrorMessage string
}

// Acknowledged reports whether Kinesis acknowledged the event's record.
func (r Result) Acknowledged() bool { return r.ShardID != "" && r.SequenceNumber != "" }

// Publisher puts batches of events into one stream. It is safe for concurrent use.
type Publisher struct {
	api    stream.API
	stream string
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	mu            sync.Mutex
	inFlightCount int
	inFlightBytes int64
	peakBytes     int64
	// byProducer is what each producer's reservations (ReserveFor) hold.
	byProducer map[string]int64
	// publishing holds, per batch in putAll, the end of its retry budget: the latest time
	// it will release its share of the in-flight budget.
	publishing map[*Reservation]time.Time

	tracer        trace.Tracer
	calls         metric.Int64Counter
	callDuration  metric.Float64Histogram
	records       metric.Int64Counter
	entryFailures metric.Int64Counter
	busy          metric.Int64Counter
}

// New returns a publisher for the named stream. A nil meter records nothing.
func New(api stream.API, streamName string, cfg Config, logger *slog.Logger, meter metric.Meter) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("publish config: %w", err)
	}
	if streamName == "" {
		return nil, errors.New("publish: stream name is required")
	}
	p := &Publisher{api: api, stream: streamName, cfg: cfg, logger: logger, now: time.Now, tracer: otel.Tracer(instrumentationName),
		publishing: map[*Reservation]time.Time{}, byProducer: map[string]int64{}}
	if meter == nil {
		meter = noop.Meter{}
	}
	var errs [5]error
	p.calls, errs[0] = meter.Int64Counter("boxscore.ingest.put_records.calls",
		metric.WithDescription("PutRecords calls, by outcome (ok, partial, error) and error code."))
	p.callDuration, errs[1] = meter.Float64Histogram("boxscore.ingest.put_records.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of PutRecords calls."))
	p.records, errs[2] = meter.Int64Counter("boxscore.ingest.records.acknowledged",
		metric.WithDescription("Records Kinesis acknowledged."))
	p.entryFailures, errs[3] = meter.Int64Counter("boxscore.ingest.records.failed",
		metric.WithDescription("PutRecords entries that failed, by error code (each is resent while retryable)."))
	p.busy, errs[4] = meter.Int64Counter("boxscore.ingest.batches.busy",
		metric.WithDescription("Batches refused because too many batches or bytes were in flight."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("publish metrics: %w", err)
	}
	return p, nil
}

// entry is one encoded record waiting for Kinesis.
type entry struct {
	data []byte
	key  string
}

func (e entry) size() int { return len(e.data) + len(e.key) }

// Publish puts every event into the stream and returns, in batch order, where each went.
// The events must already be validated and carry their ids. On success every result is
// acknowledged. Otherwise the error is a *BusyError (nothing sent), *RecordTooLargeError
// (nothing sent), *UnavailableError or *RejectedError (their Results say which events were
// acknowledged), or wraps ErrTooManyEvents.
func (p *Publisher) Publish(ctx context.Context, events []*statsv1.StatEvent) ([]Result, error) {
	return p.PublishReserved(ctx, nil, "", events)
}

// PublishReserved is Publish within a reservation taken with Reserve before the events were
// read: the batch uses the reservation's in-flight slot and bytes (and takes more bytes if
// its records turn out larger than reserved) instead of taking its own. A nil reservation is
// Publish. The reservation stays the caller's to release. producer is recorded in every
// record's envelope (empty: none).
func (p *Publisher) PublishReserved(ctx context.Context, res *Reservation, producer string, events []*statsv1.StatEvent) ([]Result, error) {
	if len(events) > MaxBatchEvents {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyEvents, len(events), MaxBatchEvents)
	}
	if len(events) == 0 {
		return nil, nil
	}
	// The producer span of the messaging semantic conventions: "{operation} {destination}",
	// one send of a batch.
	ctx, span := p.tracer.Start(ctx, "send "+p.stream, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("aws_kinesis"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(p.stream),
			semconv.MessagingBatchMessageCount(len(events)),
		))
	defer span.End()

	entries, total, err := p.encode(ctx, producer, events)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	if res == nil {
		res, err = p.Reserve(total)
		if err != nil {
			p.busy.Add(ctx, 1)
			span.SetStatus(codes.Error, "busy")
			return nil, err
		}
		defer res.Release()
	} else if err := res.publishing(total); err != nil {
		p.busy.Add(ctx, 1)
		span.SetStatus(codes.Error, "busy")
		return nil, err
	}

	results := make([]Result, len(events))
	for i, ev := range events {
		results[i] = Result{Index: i, EventID: ev.GetEventId()}
	}
	err = p.putAll(ctx, res, entries, results)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return results, err
}

// encode turns every event into its envelope record. All records of a batch share one
// acceptance time and the trace context of the publish span.
func (p *Publisher) encode(ctx context.Context, producer string, events []*statsv1.StatEvent) ([]entry, int64, error) {
	carrier := telemetry.InjectMap(ctx)
	acceptedAt := p.now()
	if entries, total, ok := encodeBatch(producer, acceptedAt, carrier, events); ok {
		return entries, total, nil
	}
	// A batch encodeBatch cannot write (a nil event, a string that is not UTF-8) is written
	// one event at a time, which says what is wrong with which event.
	return encodeEach(producer, acceptedAt, carrier, events)
}

// encodeBatch writes every record into one buffer (see batchEnvelopes); ok is false when an
// event cannot be encoded or its record is over the limit, with nothing decided.
func encodeBatch(producer string, acceptedAt time.Time, carrier map[string]string, events []*statsv1.StatEvent) ([]entry, int64, bool) {
	envs, err := newBatchEnvelopes(producer, acceptedAt, carrier)
	if err != nil {
		return nil, 0, false
	}
	for _, ev := range events {
		if ev == nil {
			return nil, 0, false
		}
	}
	sizes, dataBytes := envs.sizes(events)
	buf := make([]byte, 0, dataBytes)
	// The partition keys too are written into one buffer, then cut from one string.
	keys := make([]byte, 0, len(events)*len("660271"))
	keyEnds := make([]int, len(events))
	entries := make([]entry, len(events))
	var total int64
	for i, ev := range events {
		start := len(buf)
		if buf, err = envs.appendRecord(buf, ev, sizes[i]); err != nil {
			return nil, 0, false
		}
		keyStart := len(keys)
		keys = strconv.AppendInt(keys, ev.GetPlayer().GetMlbId(), 10)
		keyEnds[i] = len(keys)
		// The capacity is cut so that no record can grow into the next.
		entries[i].data = buf[start:len(buf):len(buf)]
		size := len(entries[i].data) + len(keys) - keyStart
		if size > MaxRecordBytes {
			return nil, 0, false
		}
		total += int64(size)
	}
	allKeys := string(keys)
	keyStart := 0
	for i := range entries {
		entries[i].key = allKeys[keyStart:keyEnds[i]]
		keyStart = keyEnds[i]
	}
	return entries, total, true
}

// encodeEach writes every record with statevent.EncodeProducerEnvelope.
func encodeEach(producer string, acceptedAt time.Time, carrier map[string]string, events []*statsv1.StatEvent) ([]entry, int64, error) {
	entries := make([]entry, len(events))
	var total int64
	for i, ev := range events {
		data, err := statevent.EncodeProducerEnvelope(ev, producer, acceptedAt, carrier)
		if err != nil {
			return nil, 0, fmt.Errorf("encode event %d: %w", i, err)
		}
		e := entry{data: data, key: strconv.FormatInt(ev.GetPlayer().GetMlbId(), 10)}
		if e.size() > MaxRecordBytes {
			return nil, 0, &RecordTooLargeError{Index: i, Size: e.size()}
		}
		entries[i] = e
		total += int64(e.size())
	}
	return entries, total, nil
}

// Reservation is one batch's share of the publisher's in-flight budget: bytes and, once
// the batch is ready to publish, one batch slot. The front ends take it before the request's
// bytes are held — the HTTP API with ReserveFor, growing it as the body arrives; the gRPC
// API with Reserve of the largest message when a stream opens — so that the bodies being
// read, decoded and published together stay within MaxInFlightBytes however many clients
// send at once, and a client still sending holds only what it sent and no batch slot.
type Reservation struct {
	p        *Publisher
	mu       sync.Mutex
	bytes    int64
	slot     bool
	released bool
	// producer, when accounted, is whose share of the budget the bytes count against.
	producer  string
	accounted bool
}

// Reserve takes one in-flight batch slot and bytes of the in-flight byte budget, or returns
// a *BusyError at once when either is exhausted. Release the reservation when done.
func (p *Publisher) Reserve(bytes int64) (*Reservation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &Reservation{p: p, slot: true}
	if p.inFlightCount >= p.cfg.MaxInFlightBatches || !p.addLocked(r, bytes) {
		return nil, &BusyError{RetryAfter: p.busyRetryAfterLocked()}
	}
	p.inFlightCount++
	return r, nil
}

// ReserveFor takes bytes of the in-flight byte budget for producer, without a batch slot
// (taken when the batch is published), or returns a *BusyError at once: when the budget is
// exhausted, or when the producer already holds its share (MaxInFlightBytesPerProducer),
// so that one producer's slow or huge uploads leave room for the others.
func (p *Publisher) ReserveFor(producer string, bytes int64) (*Reservation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &Reservation{p: p, producer: producer, accounted: true}
	if !p.addLocked(r, bytes) {
		return nil, &BusyError{RetryAfter: p.busyRetryAfterLocked()}
	}
	return r, nil
}

// addLocked adds extra bytes to r if the budget and r's producer's share allow.
func (p *Publisher) addLocked(r *Reservation, extra int64) bool {
	if p.inFlightBytes+extra > p.cfg.MaxInFlightBytes {
		return false
	}
	if r.accounted && p.byProducer[r.producer]+extra > p.cfg.producerBytes() {
		return false
	}
	p.inFlightBytes += extra
	p.peakBytes = max(p.peakBytes, p.inFlightBytes)
	r.bytes += extra
	if r.accounted {
		p.byProducer[r.producer] += extra
	}
	return true
}

// subLocked gives back less bytes of r.
func (p *Publisher) subLocked(r *Reservation, less int64) {
	p.inFlightBytes -= less
	r.bytes -= less
	if r.accounted {
		if p.byProducer[r.producer] -= less; p.byProducer[r.producer] <= 0 {
			delete(p.byProducer, r.producer)
		}
	}
}

// InFlightBytes returns the bytes reserved now and the most ever reserved at once (the
// high-water mark a test checks the memory bound with).
func (p *Publisher) InFlightBytes() (now, peak int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inFlightBytes, p.peakBytes
}

// Bytes is what the reservation holds now (0 for nil).
func (r *Reservation) Bytes() int64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Grow makes the reservation hold at least bytes, or returns a *BusyError (the reservation
// keeps what it held). A nil reservation (a test's publisher) grows without limit.
func (r *Reservation) Grow(bytes int64) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.growLocked(bytes)
}

func (r *Reservation) growLocked(bytes int64) error {
	if r.released {
		return errors.New("reservation already released")
	}
	extra := bytes - r.bytes
	if extra <= 0 {
		return nil
	}
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.addLocked(r, extra) {
		return &BusyError{RetryAfter: p.busyRetryAfterLocked()}
	}
	return nil
}

// Shrink gives back what the reservation holds beyond bytes (a gRPC stream reserved the
// largest message; once it is read, only its size is needed).
func (r *Reservation) Shrink(bytes int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released || bytes >= r.bytes {
		return
	}
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subLocked(r, r.bytes-bytes)
}

// publishing makes the reservation hold a batch slot and at least bytes, or returns a
// *BusyError.
func (r *Reservation) publishing(bytes int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.growLocked(bytes); err != nil {
		return err
	}
	if r.slot {
		return nil
	}
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlightCount >= p.cfg.MaxInFlightBatches {
		return &BusyError{RetryAfter: p.busyRetryAfterLocked()}
	}
	p.inFlightCount++
	r.slot = true
	return nil
}

// Release gives the reservation's slot and bytes back. Releasing twice, or a nil
// reservation, does nothing.
func (r *Reservation) Release() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		return
	}
	r.released = true
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.slot {
		p.inFlightCount--
	}
	p.subLocked(r, r.bytes)
	delete(p.publishing, r)
}

// busyRetryAfterLocked is the Retry-After of a busy answer: the time until the retry budget
// of the oldest publishing batch ends, as a batch gives its share of the in-flight budget
// back at the latest then. It is never more than the retry budget (when no batch is
// publishing yet, the reservations belong to bodies still being read) nor less than a
// second, the unit of Retry-After.
func (p *Publisher) busyRetryAfterLocked() time.Duration {
	wait := p.cfg.RetryBudget
	now := p.now()
	for _, end := range p.publishing {
		wait = min(wait, end.Sub(now))
	}
	return max(wait, time.Second)
}

// UnavailableRetryAfter is the Retry-After of an answer given after attempts PutRecords
// attempts failed: the wait the publisher's own backoff would have taken next, without
// jitter (InitialBackoff doubled per failed attempt, capped at MaxBackoff), and at least a
// second, the unit of Retry-After. A client honouring it continues the gateway's backoff
// where it stopped, instead of hammering a throttled stream.
func (c Config) UnavailableRetryAfter(attempts int) time.Duration {
	wait := c.InitialBackoff
	for i := 1; i < attempts && wait < c.MaxBackoff; i++ {
		wait *= 2
	}
	return max(min(wait, c.MaxBackoff), time.Second)
}

// errEntriesPending makes backoff.Retry try again: some entries are still unacknowledged.
var errEntriesPending = errors.New("entries not acknowledged yet")

// putAll sends the entries that are not acknowledged yet until all are, a permanent error
// occurs, or the retry budget runs out. results is updated in place after every call.
func (p *Publisher) putAll(ctx context.Context, res *Reservation, entries []entry, results []Result) error {
	// The budget is a hard deadline too: a call in flight when it expires is cut off, so the
	// caller's answer is never later than the budget.
	budgetEnd := p.now().Add(p.cfg.RetryBudget)
	budgetCtx, cancel := context.WithDeadline(ctx, budgetEnd)
	defer cancel()
	p.mu.Lock()
	p.publishing[res] = budgetEnd
	p.mu.Unlock()

	policy := &backoff.ExponentialBackOff{
		InitialInterval:     p.cfg.InitialBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         p.cfg.MaxBackoff,
	}
	attempts := 0
	var lastErr error
	_, err := backoff.Retry(budgetCtx, func() (struct{}, error) {
		attempts++
		lastErr = p.attempt(budgetCtx, entries, results)
		return struct{}{}, lastErr
	},
		backoff.WithBackOff(policy),
		backoff.WithMaxElapsedTime(p.cfg.RetryBudget),
		backoff.WithNotify(func(err error, wait time.Duration) {
			p.logger.DebugContext(ctx, "resending unacknowledged records", "stream", p.stream,
				"pending", len(results)-acknowledged(results), "wait", wait, "error", err)
		}),
	)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// The caller went away (client disconnect, its deadline); what was acknowledged
		// until then is still reported.
		return &UnavailableError{RetryAfter: p.cfg.UnavailableRetryAfter(attempts), Results: results,
			Cause: fmt.Errorf("after %d attempts: %w", attempts, context.Cause(ctx))}
	}
	// The last attempt's failure says more than the budget's deadline.
	cause := fmt.Errorf("after %d attempts: %w", attempts, lastErr)
	var permanent *backoff.PermanentError
	if errors.As(lastErr, &permanent) {
		return &RejectedError{Results: results, Cause: cause}
	}
	return &UnavailableError{RetryAfter: p.cfg.UnavailableRetryAfter(attempts), Results: results, Cause: cause}
}

// entryRejectedError says Kinesis refused an entry for a reason a resend cannot fix.
type entryRejectedError struct {
	index      int
	code, text string
}

func (e *entryRejectedError) Error() string {
	return fmt.Sprintf("record %d rejected: %s: %s", e.index, e.code, e.text)
}

// attempt sends, in as few PutRecords calls as the limits allow, every entry that is not
// acknowledged yet. It returns nil once all are acknowledged, a backoff.Permanent error when
// retrying cannot help, and another error when a resend may.
func (p *Publisher) attempt(ctx context.Context, entries []entry, results []Result) error {
	var pending []int
	for i := range entries {
		if !results[i].Acknowledged() {
			pending = append(pending, i)
		}
	}
	var retryable []error
	for _, call := range splitCalls(pending, entries) {
		err := p.putRecords(ctx, call, entries, results)
		if err == nil {
			continue
		}
		var rejected *entryRejectedError
		if errors.As(err, &rejected) || !transient(err) {
			return backoff.Permanent(err)
		}
		retryable = append(retryable, err)
	}
	if len(retryable) > 0 {
		return errors.Join(retryable...)
	}
	return nil
}

// putRecords makes one PutRecords call for the entries with the given indexes and records
// its outcome in results.
func (p *Publisher) putRecords(ctx context.Context, indexes []int, entries []entry, results []Result) error {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: make([]types.PutRecordsRequestEntry, len(indexes))}
	// The SDK takes the keys by pointer: point into one slice rather than allocate each.
	keys := make([]string, len(indexes))
	for j, i := range indexes {
		keys[j] = entries[i].key
		in.Records[j] = types.PutRecordsRequestEntry{Data: entries[i].data, PartitionKey: &keys[j]}
	}
	// The call's CLIENT span, child of the publish span, is the Kinesis client's own
	// (otelaws, see stream.NewKinesisClient): error status, throttling and failed entries.
	callCtx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	defer cancel()
	start := time.Now()
	out, err := p.api.PutRecords(callCtx, in)
	p.callDuration.Record(ctx, time.Since(start).Seconds())
	if err != nil {
		code := errorCode(err)
		for _, i := range indexes {
			results[i].ErrorCode, results[i].ErrorMessage = code, err.Error()
		}
		p.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "error"), attribute.String("error_code", code)))
		return fmt.Errorf("PutRecords on stream %s: %w", p.stream, err)
	}
	if len(out.Records) != len(indexes) {
		// Without a one-to-one answer no entry can be called acknowledged; resending them
		// all may duplicate records, which consumers absorb by event id.
		err := fmt.Errorf("PutRecords on stream %s answered %d entries for %d records", p.stream, len(out.Records), len(indexes))
		for _, i := range indexes {
			results[i].ErrorCode, results[i].ErrorMessage = "MalformedResponse", err.Error()
		}
		p.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "error"), attribute.String("error_code", "MalformedResponse")))
		return err
	}

	var failed int
	var rejected *entryRejectedError
	for j, rec := range out.Records {
		i := indexes[j]
		if rec.ErrorCode == nil && aws.ToString(rec.ShardId) != "" && aws.ToString(rec.SequenceNumber) != "" {
			results[i].ShardID, results[i].SequenceNumber = *rec.ShardId, *rec.SequenceNumber
			results[i].ErrorCode, results[i].ErrorMessage = "", ""
			continue
		}
		failed++
		code := aws.ToString(rec.ErrorCode)
		if code == "" {
			code = "MissingSequenceNumber"
		}
		results[i].ErrorCode, results[i].ErrorMessage = code, aws.ToString(rec.ErrorMessage)
		p.entryFailures.Add(ctx, 1, metric.WithAttributes(attribute.String("error_code", code)))
		if rec.ErrorCode != nil && !retryableEntryCode(code) && rejected == nil {
			rejected = &entryRejectedError{index: i, code: code, text: aws.ToString(rec.ErrorMessage)}
		}
	}
	p.records.Add(ctx, int64(len(indexes)-failed))
	outcome := "ok"
	if failed > 0 {
		outcome = "partial"
	}
	p.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	if rejected != nil {
		return rejected
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d records of a PutRecords call failed", errEntriesPending, failed, len(indexes))
	}
	return nil
}

// splitCalls groups the pending entries, in order, into calls within the PutRecords limits
// of entries and bytes per call.
func splitCalls(pending []int, entries []entry) [][]int {
	var calls [][]int
	var current []int
	bytes := 0
	for _, i := range pending {
		size := entries[i].size()
		if len(current) == MaxBatchEvents || (len(current) > 0 && bytes+size > MaxCallBytes) {
			calls = append(calls, current)
			current, bytes = nil, 0
		}
		current = append(current, i)
		bytes += size
	}
	if len(current) > 0 {
		calls = append(calls, current)
	}
	return calls
}
