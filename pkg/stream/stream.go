// Package stream is Boxscore's one seam to the event stream. Everything that reads or writes
// the stream goes through the API interface, which is the subset of the Kinesis Data Streams
// API that Boxscore uses. Its one implementation is the aws-sdk-go-v2 Kinesis client, the same
// binary against AWS or against kinesalite (or another Kinesis-compatible endpoint) with an
// endpoint override; tests wrap it (pkg/testutil) to inject faults.
//
// Streams are addressed by name, never by ARN: kinesalite predates the StreamARN parameters.
package stream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	// otelaws is marked deprecated (v0.72.0: the contrib module has lost its owner). It is
	// still the one span per call with the AWS semantic conventions; the SDK's own tracing
	// (smithyoteltracing) would add about ten internal spans to every call.
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws" //nolint:staticcheck // SA1019, see above
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// API is the part of the Kinesis API Boxscore calls.
type API interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// Config says where the stream is. Embed it in a service's config (kong flags and env).
type Config struct {
	Name     string `name:"stream" env:"BOXSCORE_STREAM" default:"boxscore-stats" help:"Kinesis stream name."`
	Region   string `name:"aws-region" env:"AWS_REGION" default:"us-east-1" help:"AWS region of the stream."`
	Endpoint string `name:"kinesis-endpoint" env:"BOXSCORE_KINESIS_ENDPOINT" help:"Kinesis endpoint override (kinesalite: http://127.0.0.1:4567). Empty: the AWS endpoint of the region."`
}

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("stream name is required"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("AWS region is required"))
	}
	return errors.Join(errs...)
}

// NewKinesisClient builds a Kinesis client from the default AWS credential chain (IRSA on
// EKS, environment, shared config). With an endpoint override and no credentials in the
// environment it uses static dummy credentials, which kinesalite accepts.
//
// The SDK's own retryer is turned off (MaxAttempts 1): callers retry with their own policy,
// because a PutRecords retry must resend only the failed entries and a GetRecords retry must
// respect the per-shard rate limit.
//
// Every call is traced by the OpenTelemetry AWS SDK middleware (otelaws: a CLIENT span named
// "Kinesis.<Operation>" with rpc.system.name=aws-api, rpc.method, aws.region and the HTTP
// status), plus cloud.region, aws.kinesis.stream_name and, for a PutRecords that partly
// failed, aws.kinesis.failed_records. A call is traced only as part of an operation that is
// itself traced (a request, a batch): a call made outside any span, such as a consumer
// polling an idle shard five times a second, makes no trace of its own.
func NewKinesisClient(ctx context.Context, cfg Config, options ...ClientOption) (*kinesis.Client, error) {
	var o clientOptions
	for _, opt := range options {
		opt(&o)
	}
	if o.tracerProvider == nil {
		o.tracerProvider = otel.GetTracerProvider()
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithRetryMaxAttempts(1),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(keepConnections)),
	}
	if cfg.Endpoint != "" {
		// A local endpoint must never reach for the EC2 instance metadata service: off AWS
		// that is a network call to a link-local address that can only time out.
		opts = append(opts, awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled))
		if !hasExplicitCredentials() {
			opts = append(opts, awsconfig.WithCredentialsProvider(
				credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	otelaws.AppendMiddlewares(&awsCfg.APIOptions,
		otelaws.WithTracerProvider(childSpansOnly{tp: o.tracerProvider}),
		otelaws.WithAttributeBuilder(kinesisAttributes))
	return kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	}), nil
}

// maxIdleConnections is how many idle connections to the stream's endpoint a client keeps.
// The SDK's default transport keeps 10 per host; a gateway has a PutRecords in flight per
// request it is serving (32 producers in make bench) and a consumer a GetRecords per shard,
// so beyond the tenth every call closed its connection after the answer and the next one
// dialled again: a TCP handshake (a TLS one against AWS) per call, and a new socket for the
// server to accept. Kept connections still close after the transport's idle timeout (90 s).
const maxIdleConnections = 256

// keepConnections sets the transport's idle pool to maxIdleConnections.
func keepConnections(t *http.Transport) {
	t.MaxIdleConns = maxIdleConnections
	t.MaxIdleConnsPerHost = maxIdleConnections
}

// ClientOption configures NewKinesisClient.
type ClientOption func(*clientOptions)

type clientOptions struct {
	tracerProvider trace.TracerProvider
}

// WithTracerProvider traces the client's calls with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(o *clientOptions) { o.tracerProvider = tp }
}

// hasExplicitCredentials reports whether the environment names credentials of its own
// (static keys, a web identity token as IRSA provides, or a profile).
func hasExplicitCredentials() bool {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		if os.Getenv(name) != "" {
			return true
		}
	}
	return false
}
