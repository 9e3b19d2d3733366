package consumer

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// spanSeeingTransformer answers a row per record and remembers the span of each call's
// context.
type spanSeeingTransformer struct{ seen []trace.SpanContext }

func (s *spanSeeingTransformer) Transform(ctx context.Context, req *transformv1.TransformRequest, _ ...grpc.CallOption) (*transformv1.TransformResponse, error) {
	s.seen = append(s.seen, trace.SpanContextFromContext(ctx))
	resp := &transformv1.TransformResponse{}
	for _, r := range req.GetRecords() {
		resp.Rows = append(resp.Rows, &warehousev1.BattingGameRow{Position: r.GetPosition()})
	}
	return resp, nil
}

type spanSeeingLoader struct {
	loadv1.LoadServiceClient
	seen []trace.SpanContext
}

func (s *spanSeeingLoader) Load(ctx context.Context, req *loadv1.LoadRequest, _ ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	s.seen = append(s.seen, trace.SpanContextFromContext(ctx))
	return &loadv1.LoadResponse{Checkpoint: &loadv1.Checkpoint{SequenceNumber: req.GetSequenceNumber()}}, nil
}

func TestBatchIsAConsumerSpanLinkedToItsProducers(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	producer := tp.Tracer("gateway")

	// Two PutRecords calls' worth of records (the first with two records), one record of an
	// older producer without trace context, and one that is not an envelope at all.
	var bodies [][]byte
	var producers []trace.SpanContext
	for _, n := range []int{2, 1} {
		ctx, span := producer.Start(context.Background(), "publish", trace.WithSpanKind(trace.SpanKindProducer))
		producers = append(producers, span.SpanContext())
		for range n {
			data, err := statevent.EncodeEnvelope(&statsv1.StatEvent{EventId: "ev"}, time.Now(), telemetry.InjectMap(ctx))
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, data)
		}
		span.End()
	}
	old, err := statevent.EncodeEnvelope(&statsv1.StatEvent{EventId: "old"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bodies = append(bodies, old, []byte("not an envelope"))

	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	transformer, loader := &spanSeeingTransformer{}, &spanSeeingLoader{}
	c := &Consumer{cfg: Config{Stream: "stats", RPCTimeout: time.Second, Retry: RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond}},
		transformer: transformer, loader: loader, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: m, tracer: tp.Tracer("consumer")}
	r := &shardReader{c: c, shard: types.Shard{ShardId: aws.String("shardId-000000000001")}, token: 7, log: c.log}
	b := newBatch(BatchConfig{MaxRecords: 500, MaxBytes: 4 << 20, MaxAge: time.Second})
	for i, data := range bodies {
		r.lastRead = string(rune('1' + i))
		b.add(&transformv1.SourceRecord{Data: data, Position: &streamv1.RecordPosition{Stream: "stats", ShardId: r.shardID(), SequenceNumber: r.lastRead}})
	}
	if err := r.flush(context.Background(), b, false); err != nil {
		t.Fatal(err)
	}

	var batchSpan sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		if s.SpanKind() == trace.SpanKindConsumer {
			batchSpan = s
		}
	}
	if batchSpan == nil {
		t.Fatal("no CONSUMER span for the batch")
	}
	if batchSpan.Name() != "process stats" || batchSpan.Parent().IsValid() {
		t.Fatalf("batch span %q with parent %v: want a root span named \"process stats\"", batchSpan.Name(), batchSpan.Parent())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range batchSpan.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	for key, want := range map[attribute.Key]string{
		"messaging.system": "aws_kinesis", "messaging.destination.name": "stats", "messaging.operation.type": "process",
		"messaging.destination.partition.id": "shardId-000000000001",
	} {
		if got := attrs[key].AsString(); got != want {
			t.Errorf("attribute %s = %q, want %q", key, got, want)
		}
	}
	if got := attrs["messaging.batch.message_count"].AsInt64(); got != int64(len(bodies)) {
		t.Errorf("messaging.batch.message_count = %d, want %d", got, len(bodies))
	}
	links := batchSpan.Links()
	if len(links) != len(producers) {
		t.Fatalf("%d links, want one per producing span (%d)", len(links), len(producers))
	}
	for i, p := range producers {
		if links[i].SpanContext.TraceID() != p.TraceID() || links[i].SpanContext.SpanID() != p.SpanID() {
			t.Errorf("link %d to %s/%s, want producer %s/%s", i, links[i].SpanContext.TraceID(), links[i].SpanContext.SpanID(), p.TraceID(), p.SpanID())
		}
	}
	// The Transform and Load calls run inside the batch span (their gRPC client spans hang
	// under it).
	for name, seen := range map[string][]trace.SpanContext{"transform": transformer.seen, "load": loader.seen} {
		if len(seen) != 1 || seen[0].SpanID() != batchSpan.SpanContext().SpanID() {
			t.Errorf("%s calls ran in spans %v, want the batch span %s", name, seen, batchSpan.SpanContext().SpanID())
		}
	}
}
