package stream

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// failedRecordsKey is the number of entries of a PutRecords call that Kinesis refused (the
// call itself succeeded: a partial failure is no error status).
const failedRecordsKey = attribute.Key("aws.kinesis.failed_records")

// kinesisAttributes is the otelaws attribute builder for Kinesis calls: the semantic
// conventions' cloud.region and aws.kinesis.stream_name, and the failed entries of a
// PutRecords call.
func kinesisAttributes(ctx context.Context, in middleware.InitializeInput, out middleware.InitializeOutput) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if region := awsmiddleware.GetRegion(ctx); region != "" {
		attrs = append(attrs, semconv.CloudRegion(region))
	}
	var streamName *string
	switch p := in.Parameters.(type) {
	case *kinesis.PutRecordsInput:
		streamName = p.StreamName
	case *kinesis.ListShardsInput:
		streamName = p.StreamName
	case *kinesis.GetShardIteratorInput:
		streamName = p.StreamName
	case *kinesis.DescribeStreamSummaryInput:
		streamName = p.StreamName
	}
	if streamName != nil && *streamName != "" {
		attrs = append(attrs, semconv.AWSKinesisStreamName(*streamName))
	}
	if r, ok := out.Result.(*kinesis.PutRecordsOutput); ok && r.FailedRecordCount != nil && *r.FailedRecordCount > 0 {
		attrs = append(attrs, failedRecordsKey.Int(int(*r.FailedRecordCount)))
	}
	return attrs
}

// childSpansOnly is a TracerProvider whose tracers start a span only under a parent: an AWS
// call belongs to the trace of the operation that made it, and a call made outside any
// (a poll of an idle shard, a periodic ListShards) is left untraced instead of becoming a
// trace of its own several times a second.
type childSpansOnly struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p childSpansOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{tracer: p.tp.Tracer(name, opts...)}
}

type childTracer struct {
	embedded.Tracer
	tracer trace.Tracer
}

func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// The non-recording span of an empty context: nothing is recorded or exported.
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, name, opts...)
}
