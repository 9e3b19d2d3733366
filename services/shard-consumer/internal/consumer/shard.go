package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// errRestartShard tells the shard loop that its position is stale (the stored checkpoint is
// not where this reader believed it was) and it must start again from the stored checkpoint.
var errRestartShard = errors.New("checkpoint moved underneath the reader")

// ErrLeaseLost means another consumer claimed the shard with a greater fencing token: this
// reader must stop at once, without committing anything.
var ErrLeaseLost = errors.New("shard claimed by another consumer")

// shardReader reads one shard from its committed checkpoint to its end (closed shards) or
// until stopped, and hands records downstream in batches. It never reads ahead of what it
// is committing by more than its read budget (ReadConfig): one batch is in flight at a
// time and the next GetRecords answers wait, bounded, behind it, which is the backpressure
// when the warehouse is slow.
type shardReader struct {
	c     *Consumer
	shard types.Shard
	token int64 // fencing token of this consumer's lease on the shard
	log   *slog.Logger

	committed  string            // sequence number stored in the warehouse; "" when none
	gap        *loadv1.StreamGap // a trim_horizon gap found, to commit with the next batch
	lastRead   string            // sequence number of the last record put in a batch
	nextCallAt time.Time         // the fetcher's: when the next GetRecords may be made
	budget     *readBudget       // what is held read and not yet committed
}

// readBytesPerSecond is Kinesis' read limit per shard (2 MB/s, shared by every reader of
// the shard with the 5 calls/s limit).
const readBytesPerSecond = limits.KinesisShardReadBytesPerSecond

// run reads the shard until it is finished (returns nil after the shard-end checkpoint) or
// ctx ends (returns ctx's error after committing what it holds).
func (r *shardReader) run(ctx context.Context) error {
	for {
		err := r.readFromCheckpoint(ctx)
		if errors.Is(err, errRestartShard) {
			r.log.Warn("restarting shard from the stored checkpoint")
			continue
		}
		return err
	}
}

func (r *shardReader) readFromCheckpoint(ctx context.Context) error {
	// Claiming with the lease's token fences off any former owner before the first read
	// (a refused claim: see claim).
	cp, err := r.claim(ctx)
	if err != nil {
		return err
	}
	if cp.GetShardEnd() {
		r.log.Debug("shard already finished")
		return nil
	}
	r.committed = cp.GetSequenceNumber()
	r.lastRead = r.committed
	// Before reading on after the checkpoint: is its record still in the shard? If not,
	// records after it expired unread; that gap is reported and recorded, never skipped
	// silently.
	if err := r.checkTrimHorizon(ctx); err != nil {
		return err
	}
	r.log.Info("reading shard", "from_sequence_number", r.committed, "stream_identity", cp.GetStreamIdentity())

	iterator, err := r.newIterator(ctx, r.lastRead)
	if err != nil {
		return err
	}
	// The next GetRecords is in flight while a batch is transformed and loaded (fetch);
	// pages come back in order and only what went into a loaded batch is committed, so the
	// loader sees the same sequence of batches as without the read-ahead. Whatever is read
	// ahead when the reader returns (lease lost, stopping, shard end, error) is dropped.
	r.budget = newReadBudget(r.c.cfg.Read, &r.c.held)
	shardID := r.shardID()
	r.budget.report = func(records, bytes int) { r.c.metrics.held(shardID, records, bytes) }
	defer r.c.metrics.held(shardID, 0, 0) // what is read ahead is dropped with the reader
	fetchCtx, stopFetch := context.WithCancel(ctx)
	pages := make(chan page, pagesQueued)
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		r.fetch(fetchCtx, iterator, r.lastRead, pages)
	}()
	defer func() {
		stopFetch()
		<-fetched
	}()

	batch := newBatch(r.c.cfg.Batch)
	// age fires when the batch's first record has waited batch-max-age, so an idle shard's
	// batch is flushed on time rather than at the next answer.
	age := time.NewTimer(time.Hour)
	age.Stop()
	defer age.Stop()
	flush := func(shardEnd bool) error {
		age.Stop()
		return r.flush(ctx, batch, shardEnd)
	}
	for {
		if ctx.Err() != nil {
			if errors.Is(context.Cause(ctx), ErrLeaseLost) {
				// Another consumer owns the shard now: what is held is its to read again.
				return context.Cause(ctx)
			}
			if errors.Is(context.Cause(ctx), errStreamRecreated) {
				// Commit what was read of the old stream; the reader is started again
				// under the new identity.
				return errors.Join(r.flush(ctx, batch, false), context.Cause(ctx))
			}
			// Stopping: commit the batch held (never what is read ahead of it) so the
			// next owner starts right after it.
			return errors.Join(r.flush(ctx, batch, false), ctx.Err())
		}
		var p page
		select {
		case <-ctx.Done():
			continue
		case <-age.C:
			if batch.due(time.Now()) {
				if err := flush(false); err != nil {
					return err
				}
			}
			continue
		case p = <-pages:
		}
		if p.err != nil {
			return p.err
		}
		stopped := false
		for _, src := range p.records {
			if batch.empty() {
				age.Reset(r.c.cfg.Batch.MaxAge)
			}
			batch.add(src)
			r.lastRead = src.GetPosition().GetSequenceNumber()
			if batch.full() {
				if ctx.Err() != nil {
					// Told to stop (or lease lost) while cutting a large answer: the rest
					// of it is read-ahead, dropped; the top of the loop decides whether
					// the full batch is committed.
					stopped = true
					break
				}
				if err := flush(false); err != nil {
					return err
				}
			}
		}
		if stopped {
			continue
		}
		if p.shardEnd {
			// SHARD_END: the shard is closed and read to its end. Commit the rest with the
			// shard-end mark, which is what lets its children start.
			if err := flush(true); err != nil {
				return err
			}
			r.log.Info("shard finished", "sequence_number", r.committed)
			return nil
		}
		// Caught up with nothing more waiting: nothing will join the batch before the next
		// poll, so it goes now (freshness) instead of waiting for its age.
		if (p.caughtUp && len(pages) == 0) || batch.due(time.Now()) {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
}

// pagesQueued is how many GetRecords answers may wait for the reader beyond the one being
// read; the records they hold are bounded by the read budget, empty answers by this.
const pagesQueued = 4

func (r *shardReader) shardID() string { return aws.ToString(r.shard.ShardId) }

// newIterator positions a shard iterator right after the sequence number after, or at the
// shard's oldest record when after is "".
func (r *shardReader) newIterator(ctx context.Context, after string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.c.cfg.Stream), ShardId: r.shard.ShardId}
	if after != "" {
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(after)
	} else {
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	out, err := retry(ctx, r.c.cfg.Retry, func() (*kinesis.GetShardIteratorOutput, error) {
		return r.c.stream.GetShardIterator(ctx, in)
	}, r.notify("get shard iterator"))
	if err != nil {
		return nil, fmt.Errorf("get shard iterator: %w", err)
	}
	return out.ShardIterator, nil
}

// getRecordsLimit reads at most limit records, within the per-shard read limits of
// Kinesis: calls at least 200 ms apart (5 calls/s) and, after a call that returned B bytes,
// at least B/2 MB seconds before the next (2 MB/s). While the shard is behind (time behind
// the tip, or a full answer) the next call is made as soon as those limits allow; once
// caught up, only after the poll interval.
func (r *shardReader) getRecordsLimit(ctx context.Context, iterator *string, limit int32) (*kinesis.GetRecordsOutput, error) {
	return retry(ctx, r.c.cfg.Retry, func() (*kinesis.GetRecordsOutput, error) {
		if wait := time.Until(r.nextCallAt); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
			}
		}
		calledAt := time.Now()
		r.nextCallAt = calledAt.Add(r.c.cfg.PollInterval)
		out, err := r.c.stream.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: iterator,
			Limit:         aws.Int32(limit),
		}, fastGetRecords)
		if isExpiredIterator(err) {
			return nil, backoffPermanent(err)
		}
		if err == nil {
			interval := r.c.cfg.PollInterval
			if aws.ToInt64(out.MillisBehindLatest) > 0 || len(out.Records) >= int(limit) {
				interval = minCallInterval
			}
			r.nextCallAt = nextReadAt(calledAt, interval, out.Records)
		}
		return out, err
	}, r.notify("get records"))
}

// nextReadAt is when the next GetRecords may be called after one made at calledAt that
// returned records.
func nextReadAt(calledAt time.Time, poll time.Duration, records []types.Record) time.Time {
	var bytes int
	for i := range records {
		bytes += len(records[i].Data) + len(aws.ToString(records[i].PartitionKey))
	}
	return calledAt.Add(max(poll, time.Duration(bytes)*time.Second/readBytesPerSecond))
}

// flush transforms and loads the batch, committing the checkpoint with it. With shardEnd
// it also marks the shard finished, even when the batch is empty. A batch the transformer
// or the loader refuses permanently is isolated (see commitIsolating) rather than retried:
// only transient failures are retried in place.
func (r *shardReader) flush(ctx context.Context, b *batch, shardEnd bool) error {
	if b.empty() && !shardEnd {
		return nil
	}
	ctx, cancel := r.flushContext(ctx)
	defer cancel()
	target := r.lastRead
	if target == "" {
		// A closed shard that never held a record: its ending sequence number marks it.
		target = aws.ToString(r.shard.SequenceNumberRange.EndingSequenceNumber)
	}
	if err := r.commitIsolating(ctx, b, target, shardEnd); err != nil {
		return err
	}
	if r.budget != nil {
		r.budget.release(len(b.records), b.bytes)
	}
	b.reset()
	return nil
}

// refusal is a permanent answer of the transformer or the loader to a whole call: neither
// transient (retried in place) nor FAILED_PRECONDITION (the checkpoint and fencing answer).
// Retrying it would stall the shard forever, so the batch is bisected instead.
type refusal struct {
	stage  string // "transform" or "load": which call refused
	reason string // refused_by_transformer, refused_by_loader
	err    error
}

func (e *refusal) Error() string { return fmt.Sprintf("%s: %v", e.reason, e.err) }
func (e *refusal) Unwrap() error { return e.err }

// notRefusal are the permanent gRPC codes that say nothing about the records: the
// checkpoint and fencing answer, a cancellation of ours, and a misconfigured or mismatched
// peer. Setting records aside for them would dead-letter good data, so they stop the
// shard instead (restarted, and reported stalled if it goes on).
var notRefusal = map[codes.Code]bool{
	codes.OK:                 true,
	codes.FailedPrecondition: true,
	codes.Canceled:           true,
	codes.Unauthenticated:    true,
	codes.PermissionDenied:   true,
	codes.Unimplemented:      true,
}

// asRefusal wraps err as a *refusal when it is one: a gRPC status the peer answered that is
// neither transient nor in notRefusal (INVALID_ARGUMENT, OUT_OF_RANGE, ...).
func asRefusal(err error, stage, reason string) error {
	s, ok := status.FromError(err)
	if err == nil || !ok || isTransient(err) || notRefusal[s.Code()] {
		return err
	}
	return &refusal{stage: stage, reason: reason, err: err}
}

// commitIsolating commits the batch's records, in order, up to target. When the
// transformer or the loader refuses them permanently, it bisects: the first half is
// committed with its own checkpoint (its last record), then the second half, down to single
// records; a single record still refused is dead-lettered (deadLetter) and the checkpoint
// moves past it. Every commit is the same compare-and-set on the previous checkpoint, so a
// crash mid-bisection resumes from the last committed half and redoes the rest.
func (r *shardReader) commitIsolating(ctx context.Context, b *batch, target string, shardEnd bool) error {
	err := r.commit(ctx, b, target, shardEnd, nil)
	var ref *refusal
	if !errors.As(err, &ref) || b.empty() {
		return err
	}
	if len(b.records) == 1 {
		return r.deadLetter(ctx, b, ref, target, shardEnd)
	}
	mid := len(b.records) / 2
	first, second := subBatch(b, 0, mid), subBatch(b, mid, len(b.records))
	r.log.WarnContext(ctx, "batch refused permanently; bisecting it", "stage", ref.stage, "error", ref.err,
		"records", len(b.records), "first", first.records[0].GetPosition().GetSequenceNumber(),
		"second", second.records[0].GetPosition().GetSequenceNumber())
	r.c.metrics.bisected(ctx, r.shardID(), ref.stage)
	firstEnd := first.records[len(first.records)-1].GetPosition().GetSequenceNumber()
	if err := r.commitIsolating(ctx, first, firstEnd, false); err != nil {
		return err
	}
	return r.commitIsolating(ctx, second, target, shardEnd)
}

// subBatch is records [from, to) of b as a batch of their own, with their own span links.
func subBatch(b *batch, from, to int) *batch {
	sub := newBatch(b.cfg)
	for _, rec := range b.records[from:to] {
		sub.add(rec)
	}
	return sub
}

// deadLetter commits a single record that the transformer or the loader refused
// permanently as one dead letter built here (no row), moving the checkpoint past it. Its
// payload is the record's data as read, so it can be replayed once the cause is fixed.
func (r *shardReader) deadLetter(ctx context.Context, b *batch, ref *refusal, target string, shardEnd bool) error {
	rec := b.records[0]
	detail := ref.err.Error()
	if s, ok := status.FromError(ref.err); ok {
		detail = s.Code().String() + ": " + s.Message()
	}
	eventID, version, producer := eventOf(rec.GetData())
	rej := &warehousev1.Rejection{
		Position: rec.GetPosition(),
		Stage:    ref.stage,
		Reason:   ref.reason,
		Detail:   deadletter.StorableText(detail),
		EventId:  deadletter.StorableText(eventID),
		Payload:  rec.GetData(),
		// Who sent it, as the gateway recorded it (made storable: this record was refused,
		// so nothing in it is trusted).
		Producer: deadletter.StorableText(producer),
	}
	// The version lets the loader keep one dead letter per event (a line sent twice is in
	// the stream twice); only with an id stored as sent, or two events whose ids differ in
	// unstorable bytes alone would be taken for one.
	if deadletter.StorableText(eventID) == eventID {
		rej.EventVersion = version
	}
	r.log.WarnContext(ctx, "record refused permanently; dead-lettering it", "sequence_number", rec.GetPosition().GetSequenceNumber(),
		"stage", rej.GetStage(), "reason", rej.GetReason(), "event_id", rej.GetEventId(), "error", ref.err)
	if err := r.commit(ctx, b, target, shardEnd, rej); err != nil {
		// Nothing smaller is left to set aside: the shard restarts from the checkpoint and,
		// failing on, is reported stalled.
		return fmt.Errorf("dead-letter record %s refused by the %s: %w", rec.GetPosition().GetSequenceNumber(), ref.stage, err)
	}
	return nil
}

// eventOf is the event id and the producer of a record's envelope, when the envelope can
// be read, and the event's version, when the event can be decoded too (0 otherwise).
func eventOf(data []byte) (id string, version int64, producer string) {
	env, ev, _ := statevent.DecodeEnvelope(data)
	return env.GetEventId(), ev.GetVersion(), env.GetProducer()
}

// commit transforms the batch's records (or, with a dead letter, uses it as the batch's
// only content) and loads the result with the checkpoint compare-and-set from r.committed
// to target. A permanent refusal comes back as a *refusal.
func (r *shardReader) commit(ctx context.Context, b *batch, target string, shardEnd bool, deadLetter *warehousev1.Rejection) (err error) {
	// The batch is one CONSUMER span (a new trace), linked to the producing span of its
	// records; the transformer's and the loader's spans, and the SQL, hang under it.
	ctx, span := r.c.tracer.Start(ctx, "process "+r.c.cfg.Stream, trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(b.links...),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("aws_kinesis"),
			semconv.MessagingDestinationName(r.c.cfg.Stream),
			semconv.MessagingDestinationPartitionID(r.shardID()),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingBatchMessageCount(len(b.records)),
			attribute.Bool("boxscore.shard_end", shardEnd),
			attribute.Int64("boxscore.lease_token", r.token),
		))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End()
	}()
	started := time.Now()
	var rows [][]byte // encoded, passed through to the loader (see rows.go)
	var rejections []*warehousev1.Rejection
	switch {
	case deadLetter != nil:
		rejections = []*warehousev1.Rejection{deadLetter}
	case !b.empty():
		transformStarted := time.Now()
		resp, err := retry(ctx, r.c.cfg.Retry, func() (*transformed, error) {
			callCtx, cancel := context.WithTimeout(ctx, r.c.cfg.RPCTimeout)
			defer cancel()
			resp, err := r.c.transform(callCtx, &transformv1.TransformRequest{Records: b.records})
			return resp, asRefusal(err, "transform", "refused_by_transformer")
		}, r.notifyContext(ctx, "transform"))
		r.c.metrics.stageTook(ctx, "transform", time.Since(transformStarted))
		if err != nil {
			return fmt.Errorf("transform batch of %d records: %w", len(b.records), err)
		}
		rows, rejections = resp.rows, resp.rejections
		if got := len(rows) + len(rejections); got != len(b.records) {
			return fmt.Errorf("transformer answered for %d of %d records", got, len(b.records))
		}
	}
	req := &loadv1.LoadRequest{
		Stream:                 r.c.cfg.Stream,
		ShardId:                r.shardID(),
		ExpectedSequenceNumber: r.committed,
		SequenceNumber:         target,
		ShardEnd:               shardEnd,
		Rejections:             rejections,
		ConsumerId:             r.c.cfg.ConsumerID,
		LeaseToken:             r.token,
		Gap:                    r.gapFor(b),
	}
	encoded, err := encodeLoadRequest(req, rows)
	if err != nil {
		return err
	}
	loadStarted := time.Now()
	resp, err := retry(ctx, r.c.cfg.Retry, func() (*loadv1.LoadResponse, error) {
		callCtx, cancel := context.WithTimeout(ctx, r.c.cfg.RPCTimeout)
		defer cancel()
		resp, err := r.c.load(callCtx, encoded)
		if status.Code(err) == codes.FailedPrecondition {
			// The stored checkpoint is not the one this batch starts from. Ask the
			// warehouse rather than guess: an earlier attempt whose answer was lost may
			// have committed this very batch.
			return r.resolveMismatch(ctx, req)
		}
		return resp, asRefusal(err, "load", "refused_by_loader")
	}, r.notifyContext(ctx, "load"))
	r.c.metrics.stageTook(ctx, "load", time.Since(loadStarted))
	if err != nil {
		return fmt.Errorf("load batch ending at %s: %w", target, err)
	}
	r.committed = resp.GetCheckpoint().GetSequenceNumber()
	if req.GetGap() != nil {
		r.gap = nil
		r.c.metrics.gapFound(ctx, r.shardID(), gapTrimHorizon)
		r.log.ErrorContext(ctx, "gap recorded in stream_gap", "reason", req.GetGap().GetReason(),
			"after_sequence_number", req.GetGap().GetAfterSequenceNumber(), "before_sequence_number", req.GetGap().GetBeforeSequenceNumber())
	}
	r.c.stalls.committed(r.shardID())
	r.c.metrics.batchCommitted(ctx, r.shardID(), len(b.records), len(rejections), time.Since(started))
	span.SetAttributes(attribute.Int("boxscore.rows", len(rows)), attribute.Int("boxscore.rejections", len(rejections)),
		attribute.String("boxscore.sequence_number", r.committed))
	recordDeadLetters(span, rejections)
	r.log.DebugContext(ctx, "batch committed", "records", len(b.records), "rows", len(rows), "rejections", len(rejections),
		"inserted", resp.GetInserted(), "updated", resp.GetUpdated(), "unchanged", resp.GetUnchanged(),
		"sequence_number", r.committed, "shard_end", shardEnd, "duration", time.Since(started))
	return nil
}

// flushContext lets a flush that is under way when the reader is told to stop go on for
// at most one more RPC timeout: a finished batch is one the next reader need not read
// again, and an unfinished one is harmless because the checkpoint CAS makes it all or
// nothing.
func (r *shardReader) flushContext(ctx context.Context) (context.Context, context.CancelFunc) {
	flushCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		grace := time.NewTimer(r.c.cfg.RPCTimeout)
		defer grace.Stop()
		select {
		case <-grace.C:
			cancel()
		case <-flushCtx.Done():
		}
	})
	return flushCtx, func() {
		stop()
		cancel()
	}
}

func (r *shardReader) resolveMismatch(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	resp, err := r.c.loader.GetCheckpoint(ctx, &loadv1.GetCheckpointRequest{Stream: req.GetStream(), ShardId: req.GetShardId()})
	if err != nil {
		return nil, err
	}
	stored := resp.GetCheckpoint()
	if stored.GetLeaseToken() != req.GetLeaseToken() {
		return nil, backoffPermanent(fmt.Errorf("%w: stored token %d (owner %q), ours %d",
			ErrLeaseLost, stored.GetLeaseToken(), stored.GetOwner(), req.GetLeaseToken()))
	}
	if stored.GetSequenceNumber() == req.GetSequenceNumber() && stored.GetShardEnd() == req.GetShardEnd() {
		r.log.InfoContext(ctx, "batch was already committed by an earlier attempt", "sequence_number", stored.GetSequenceNumber())
		return &loadv1.LoadResponse{Checkpoint: stored}, nil
	}
	return nil, backoffPermanent(fmt.Errorf("%w: stored %q, batch expected %q", errRestartShard,
		stored.GetSequenceNumber(), req.GetExpectedSequenceNumber()))
}

func (r *shardReader) notify(op string) func(error, time.Duration) {
	return r.notifyContext(context.Background(), op)
}

// notifyContext is notify for an operation inside a span: the log line carries its trace.
func (r *shardReader) notifyContext(ctx context.Context, op string) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		r.c.metrics.retried(ctx, op)
		r.log.WarnContext(ctx, "transient failure, retrying", "operation", op, "error", err, "wait", wait)
		if st, now := r.c.stalls.failed(r.shardID(), op, StallTransientRetries, err, time.Now()); now {
			r.log.ErrorContext(ctx, "shard stalled: transient failures without progress for longer than the stall bound",
				"operation", op, "reason", st.Reason, "since", st.Since, "stall_after", r.c.cfg.StallAfter, "error", err)
		}
	}
}

// isExpiredIterator reports whether the iterator is no longer usable: expired (older than
// five minutes) or refused (a stream endpoint restarted under it). Either way a new one is
// taken after the last record read.
func isExpiredIterator(err error) bool {
	var expired *types.ExpiredIteratorException
	var invalid *types.InvalidArgumentException
	return errors.As(err, &expired) || errors.As(err, &invalid)
}
