// Package postgres is how Boxscore's services connect to PostgreSQL (the loader's warehouse,
// the shard consumer's lease store): a pgx pool traced and measured by otelpgx, configured
// once so that every service's database spans look alike, and secured once:
//
//   - TLS is configured in the URL as pgx/libpq read it: sslmode=verify-full with
//     sslrootcert=/path/ca.pem (the RDS CA bundle on AWS) verifies the server's certificate
//     and its host name. A database beyond loopback without a verified certificate
//     (sslmode disable, allow, prefer or require without sslrootcert) is refused unless the
//     service runs with --insecure (CheckURL, NewPool).
//   - With --database-iam-auth, every new connection authenticates with a fresh RDS IAM
//     token (15 minutes valid, signed with the AWS default credential chain: IRSA on EKS)
//     instead of a password, so no database password exists to leak or rotate.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

// IAMAuth is the RDS IAM authentication part of a service's configuration; embed it
// (`embed:""`) beside the service's database URL.
type IAMAuth struct {
	Enabled bool   `name:"database-iam-auth" env:"BOXSCORE_DATABASE_IAM_AUTH" help:"Authenticate to PostgreSQL (Amazon RDS/Aurora) with an RDS IAM token made for every new connection from the AWS default credentials (IRSA on EKS) instead of a password; the URL's user must be granted rds_iam. Use with sslmode=verify-full."`
	Region  string `name:"database-iam-region" env:"BOXSCORE_DATABASE_IAM_REGION" help:"AWS region of the database for --database-iam-auth (default: the AWS SDK's, e.g. AWS_REGION)."`
}

// Options returns NewPool's options for this configuration, with insecure the service's
// --insecure.
func (a IAMAuth) Options(insecure bool) []Option {
	opts := []Option{AllowInsecure(insecure)}
	if a.Enabled {
		opts = append(opts, WithIAMAuth(a.Region))
	}
	return opts
}

// Option configures NewPool.
type Option func(*options)

type options struct {
	tracer    []otelpgx.Option
	insecure  bool
	iam       bool
	iamRegion string
	aws       *aws.Config
	// beforeConnect runs, in order, before every new connection (after the RDS IAM token).
	beforeConnect []func(context.Context, *pgx.ConnConfig) error
}

// AllowInsecure lets NewPool connect beyond loopback without a verified TLS certificate
// (the service's --insecure).
func AllowInsecure(allow bool) Option {
	return func(o *options) { o.insecure = allow }
}

// WithIAMAuth sets every new connection's password to an RDS IAM authentication token for
// its host, port and user, signed with the AWS default credential chain, in region (empty:
// the SDK's default region).
func WithIAMAuth(region string) Option {
	return func(o *options) { o.iam, o.iamRegion = true, region }
}

// WithBeforeConnect runs hook before every new connection of the pool, with the
// connection's configuration to adjust (e.g. a user and password from temporary
// credentials: Amazon Redshift's IAM authentication). Its error fails that connection
// attempt; several hooks run in the order given, after WithIAMAuth's token.
func WithBeforeConnect(hook func(ctx context.Context, cc *pgx.ConnConfig) error) Option {
	return func(o *options) { o.beforeConnect = append(o.beforeConnect, hook) }
}

// WithAWSConfig signs IAM tokens with cfg's credentials and region instead of loading the
// default configuration (tests; a caller that already has one).
func WithAWSConfig(cfg aws.Config) Option {
	return func(o *options) { c := cfg; o.aws = &c }
}

// WithTracerProvider records the pool's spans with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = append(o.tracer, otelpgx.WithTracerProvider(tp)) }
}

// WithMeterProvider records the pool's metrics (db.client.operation.duration, ...) with mp
// instead of the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.tracer = append(o.tracer, otelpgx.WithMeterProvider(mp)) }
}

// NewPool returns a pool for databaseURL (a PostgreSQL URL or keyword/value string; pgx
// pool settings such as pool_max_conns are honoured), the one place where services' pools
// are made. Connections are made on first use, so an unreachable server is an error of the
// first query (or of a readiness Ping), not of NewPool. A URL that CheckURL refuses is an
// error unless AllowInsecure(true).
//
// Statements, COPYs, batches and connection acquisitions become CLIENT spans (named by the
// operation, e.g. "INSERT", with db.query.text) under the caller's span; with no span in
// the context nothing is recorded. The statement preparation that pgx does on a statement's
// first use is not a span of its own: it would be a second span of the same name nested
// under the statement's. An explicit Prepare is still traced.
func NewPool(ctx context.Context, databaseURL string, opts ...Option) (*pgxpool.Pool, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if !o.insecure {
		if err := checkTransport(&cfg.ConnConfig.Config); err != nil {
			return nil, err
		}
	}
	hooks := o.beforeConnect
	if o.iam {
		iamHook, err := iamBeforeConnect(ctx, o)
		if err != nil {
			return nil, err
		}
		hooks = append([]func(context.Context, *pgx.ConnConfig) error{iamHook}, hooks...)
	}
	if len(hooks) > 0 {
		cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			for _, hook := range hooks {
				if err := hook(ctx, cc); err != nil {
					return err
				}
			}
			return nil
		}
	}
	cfg.ConnConfig.Tracer = newTracer(o.tracer...)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return pool, nil
}

// CheckURL parses a database URL and, unless insecure, refuses one that reaches a host
// beyond loopback without verifying the server's certificate: a service's Validate calls
// it so a bad URL is a usage error before anything starts.
func CheckURL(databaseURL string, insecure bool) error {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return err
	}
	if insecure {
		return nil
	}
	return checkTransport(cfg)
}

// checkTransport requires, for every host the connection may try (the fallbacks of
// sslmode=prefer or of several hosts included), either a local host or TLS that verifies
// the server's certificate: sslmode=verify-full (certificate and host name) or verify-ca
// (certificate only; also require with sslrootcert, as in libpq).
func checkTransport(cfg *pgconn.Config) error {
	candidates := []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}
	candidates = append(candidates, cfg.Fallbacks...)
	for _, c := range candidates {
		if strings.HasPrefix(c.Host, "/") || server.IsLoopback(c.Host) {
			continue // a Unix socket or this machine
		}
		verified := c.TLSConfig != nil && (!c.TLSConfig.InsecureSkipVerify || c.TLSConfig.VerifyPeerCertificate != nil)
		if !verified {
			return fmt.Errorf("database host %s is beyond loopback without a verified TLS connection: add sslmode=verify-full&sslrootcert=/path/to/ca.pem to the URL, or set --insecure (BOXSCORE_INSECURE=true) to connect unverified on purpose", c.Host)
		}
	}
	return nil
}

// iamBeforeConnect returns the pool hook that gives every new connection a fresh RDS IAM
// token as its password (a token is valid 15 minutes, and only for opening a connection:
// connections outlive it).
func iamBeforeConnect(ctx context.Context, o options) (func(context.Context, *pgx.ConnConfig) error, error) {
	var awsCfg aws.Config
	if o.aws != nil {
		awsCfg = *o.aws
	} else {
		var loadOpts []func(*awsconfig.LoadOptions) error
		if o.iamRegion != "" {
			loadOpts = append(loadOpts, awsconfig.WithRegion(o.iamRegion))
		}
		var err error
		if awsCfg, err = awsconfig.LoadDefaultConfig(ctx, loadOpts...); err != nil {
			return nil, fmt.Errorf("database IAM auth: AWS configuration: %w", err)
		}
	}
	region := o.iamRegion
	if region == "" {
		region = awsCfg.Region
	}
	if region == "" {
		return nil, errors.New("database IAM auth needs a region: set --database-iam-region (BOXSCORE_DATABASE_IAM_REGION) or AWS_REGION")
	}
	if awsCfg.Credentials == nil {
		return nil, errors.New("database IAM auth: no AWS credentials provider")
	}
	return func(ctx context.Context, cc *pgx.ConnConfig) error {
		endpoint := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
		token, err := auth.BuildAuthToken(ctx, endpoint, region, cc.User, awsCfg.Credentials)
		if err != nil {
			return fmt.Errorf("RDS IAM auth token for user %s at %s: %w", cc.User, endpoint, err)
		}
		cc.Password = token
		return nil
	}, nil
}

// tracer is otelpgx's tracer without a span for the preparation pgx does inside a statement
// (Query, Exec, CopyFrom with the statement or description cache): the statement's span
// already covers it. Its duration is still measured.
type tracer struct {
	*otelpgx.Tracer
}

// inStatement marks the context of a traced statement, which pgx hands to the Prepare it
// makes for the statement.
type inStatement struct{}

var (
	_ pgx.QueryTracer       = tracer{}
	_ pgx.CopyFromTracer    = tracer{}
	_ pgx.BatchTracer       = tracer{}
	_ pgx.ConnectTracer     = tracer{}
	_ pgx.PrepareTracer     = tracer{}
	_ pgxpool.AcquireTracer = tracer{}
)

func newTracer(opts ...otelpgx.Option) tracer {
	return tracer{Tracer: otelpgx.NewTracer(opts...)}
}

func (t tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(t.Tracer.TraceQueryStart(ctx, conn, data), inStatement{}, true)
}

func (t tracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return context.WithValue(t.Tracer.TraceCopyFromStart(ctx, conn, data), inStatement{}, true)
}

func (t tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	if ctx.Value(inStatement{}) != nil {
		// Hand otelpgx a non-recording span (same trace and span ids): it then measures the
		// preparation without starting a span. The context lives only for the Prepare call.
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(ctx))
	}
	return t.Tracer.TracePrepareStart(ctx, conn, data)
}
