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
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// rejectingTransformer rejects the records whose data is "bad", as the transformer rejects
// a record it cannot decode, and answers a row for the others.
type rejectingTransformer struct{}

func (rejectingTransformer) Transform(_ context.Context, req *transformv1.TransformRequest, _ ...grpc.CallOption) (*transformv1.TransformResponse, error) {
	resp := &transformv1.TransformResponse{}
	for _, r := range req.GetRecords() {
		if string(r.GetData()) == "bad" {
			resp.Rejections = append(resp.Rejections, &warehousev1.Rejection{
				Position: r.GetPosition(), Stage: "validate", Reason: "hits_exceed_at_bats", Field: "batting.hits",
				EventId: "ev-" + r.GetPosition().GetSequenceNumber(), Payload: r.GetData(),
			})
			continue
		}
		resp.Rows = append(resp.Rows, &warehousev1.BattingGameRow{Position: r.GetPosition()})
	}
	return resp, nil
}

// failingOnceLoader refuses the first Load with a transient error, then commits.
type failingOnceLoader struct {
	loadv1.LoadServiceClient
	calls int
}

func (l *failingOnceLoader) Load(_ context.Context, req *loadv1.LoadRequest, _ ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	l.calls++
	if l.calls == 1 {
		return nil, context.DeadlineExceeded
	}
	return &loadv1.LoadResponse{
		Checkpoint:   &loadv1.Checkpoint{SequenceNumber: req.GetSequenceNumber()},
		DeadLettered: int32(len(req.GetRejections())),
	}, nil
}

// Each record the transformer rejected is a dead_letter event on the batch span, with its
// position, event id and reason, recorded once though the Load was retried.
func TestDeadLettersAreEventsOnTheBatchSpan(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	loader := &failingOnceLoader{}
	c := &Consumer{cfg: Config{Stream: "stats", RPCTimeout: time.Second, Retry: RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond}},
		transformer: rejectingTransformer{}, loader: loader, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: m, tracer: tp.Tracer("consumer")}
	r := &shardReader{c: c, shard: types.Shard{ShardId: aws.String("shardId-000000000002")}, token: 3, log: c.log}
	b := newBatch(BatchConfig{MaxRecords: 500, MaxBytes: 4 << 20, MaxAge: time.Second})
	for i, data := range []string{"good", "bad", "good", "bad"} {
		r.lastRead = string(rune('1' + i))
		b.add(&transformv1.SourceRecord{Data: []byte(data), Position: &streamv1.RecordPosition{Stream: "stats", ShardId: r.shardID(), SequenceNumber: r.lastRead}})
	}
	if err := r.flush(context.Background(), b, false); err != nil {
		t.Fatal(err)
	}
	if loader.calls != 2 {
		t.Fatalf("%d Load calls, want 2 (one failure, one retry): the retry was not exercised", loader.calls)
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
	var got []map[attribute.Key]string
	for _, e := range batchSpan.Events() {
		if e.Name != "dead_letter" {
			continue
		}
		attrs := map[attribute.Key]string{}
		for _, kv := range e.Attributes {
			attrs[kv.Key] = kv.Value.String()
		}
		got = append(got, attrs)
	}
	if len(got) != 2 {
		t.Fatalf("%d dead_letter events on the batch span, want 2 (one per rejected record): %v", len(got), got)
	}
	for i, seq := range []string{"2", "4"} {
		want := map[attribute.Key]string{
			"messaging.destination.name":         "stats",
			"messaging.destination.partition.id": "shardId-000000000002",
			"boxscore.sequence_number":           seq,
			"boxscore.event_id":                  "ev-" + seq,
			"boxscore.dead_letter.stage":         "validate",
			"boxscore.dead_letter.reason":        "hits_exceed_at_bats",
			"boxscore.dead_letter.field":         "batting.hits",
		}
		for k, v := range want {
			if got[i][k] != v {
				t.Errorf("event %d: %s = %q, want %q", i, k, got[i][k], v)
			}
		}
	}
}
