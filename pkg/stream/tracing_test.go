package stream_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/throttleproxy"
)

// tracedClient is a production Kinesis client for endpoint whose spans go to the returned
// recorder.
func tracedClient(t *testing.T, name, endpoint string) (*kinesis.Client, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	client, err := stream.NewKinesisClient(t.Context(),
		stream.Config{Name: name, Region: kinesalitetest.Region, Endpoint: endpoint},
		stream.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	return client, rec, tp.Tracer("test")
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func putEntries(name string, n int) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(name)}
	for i := range n {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			Data: []byte(fmt.Sprintf("record %d", i)), PartitionKey: aws.String(fmt.Sprintf("key-%d", i)),
		})
	}
	return in
}

// A Kinesis call made inside a span is a CLIENT child span of it carrying the semantic
// conventions of AWS SDK calls (otelaws) and of Kinesis.
func TestKinesisCallIsAClientSpanByTheConventions(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	client, rec, tracer := tracedClient(t, name, srv.Endpoint)

	ctx, parent := tracer.Start(t.Context(), "publish")
	if _, err := client.PutRecords(ctx, putEntries(name, 3)); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var put sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "Kinesis.PutRecords" {
			put = s
		}
	}
	if put == nil {
		t.Fatalf("no Kinesis.PutRecords span among %d spans", len(rec.Ended()))
	}
	if put.SpanKind() != trace.SpanKindClient {
		t.Errorf("span kind %v, want client", put.SpanKind())
	}
	if put.Parent().SpanID() != parent.SpanContext().SpanID() || put.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("PutRecords span is not a child of the span that made the call")
	}
	a := attrs(put)
	for key, want := range map[attribute.Key]string{
		"rpc.system.name":         "aws-api",
		"rpc.method":              "Kinesis/PutRecords",
		"aws.region":              kinesalitetest.Region,
		"cloud.region":            kinesalitetest.Region,
		"aws.kinesis.stream_name": name,
	} {
		if got := a[key].AsString(); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := a["http.response.status_code"].AsInt64(); got != 200 {
		t.Errorf("http.response.status_code = %d, want 200", got)
	}
	if _, ok := a["aws.kinesis.failed_records"]; ok {
		t.Errorf("aws.kinesis.failed_records set on a call whose entries all succeeded")
	}
	if put.Status().Code == codes.Error {
		t.Errorf("status %v on a successful call", put.Status())
	}
}

// A call outside any span (a consumer polling an idle shard) makes no trace of its own.
func TestKinesisCallOutsideASpanIsNotTraced(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	client, rec, _ := tracedClient(t, name, srv.Endpoint)

	if _, err := client.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Started()); n != 0 {
		t.Fatalf("%d spans started for a call made outside any span, want none", n)
	}
}

// A throttled call is an error span naming the error; a call whose entries partly failed
// is not an error, but says how many entries failed.
func TestKinesisFailuresOnTheSpan(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	proxy := throttleproxy.Start(t, srv.Endpoint, throttleproxy.ThrottleAll)
	client, rec, tracer := tracedClient(t, name, proxy.Endpoint)

	ctx, parent := tracer.Start(t.Context(), "publish")
	if _, err := client.PutRecords(ctx, putEntries(name, 2)); err == nil {
		t.Fatal("a throttled PutRecords succeeded")
	}
	proxy.Configure(throttleproxy.Config{FailEntryShare: 0.5})
	out, err := client.PutRecords(ctx, putEntries(name, 4))
	if err != nil {
		t.Fatal(err)
	}
	parent.End()

	var spans []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "Kinesis.PutRecords" {
			spans = append(spans, s)
		}
	}
	if len(spans) != 2 {
		t.Fatalf("%d PutRecords spans, want 2", len(spans))
	}
	throttled, partial := spans[0], spans[1]
	if throttled.Status().Code != codes.Error {
		t.Errorf("throttled call: status %v, want error", throttled.Status())
	}
	if got := attrs(throttled)["error.type"].AsString(); got == "" {
		t.Errorf("throttled call: no error.type")
	}
	if got := attrs(throttled)["http.response.status_code"].AsInt64(); got != 400 {
		t.Errorf("throttled call: http.response.status_code = %d, want 400", got)
	}
	if partial.Status().Code == codes.Error {
		t.Errorf("partly failed call: status %v, want no error", partial.Status())
	}
	want := int64(aws.ToInt32(out.FailedRecordCount))
	if want == 0 {
		t.Fatal("the proxy failed no entry")
	}
	if got := attrs(partial)["aws.kinesis.failed_records"].AsInt64(); got != want {
		t.Errorf("aws.kinesis.failed_records = %d, want %d", got, want)
	}
}
