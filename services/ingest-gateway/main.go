// Command ingest-gateway accepts batches of stat events over HTTP and gRPC, authenticates
// their producers, validates them and puts them into the Kinesis stream. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/grpcapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/httpapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/quota"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/readiness"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/tracetrust"
)

type config struct {
	server.Base `embed:""`
	Stream      stream.Config  `embed:""`
	Publish     publish.Config `embed:""`
	Producers   producerConfig `embed:""`

	HTTPAddr      string        `name:"http-addr" env:"BOXSCORE_HTTP_ADDR" default:"127.0.0.1:8080" help:"Address of the public HTTP API."`
	ReadyCacheTTL time.Duration `name:"ready-cache-ttl" env:"BOXSCORE_READY_CACHE_TTL" default:"5s" help:"How long a stream readiness answer is reused."`
}

// producerConfig is how producers are authenticated, limited and trusted.
type producerConfig struct {
	APIKeysFile         string        `name:"api-keys-file" env:"BOXSCORE_API_KEYS_FILE" help:"YAML file of API key hashes, producers, scopes, sources and quotas (see README); reloaded when it changes."`
	APIKeysPollInterval time.Duration `name:"api-keys-poll-interval" env:"BOXSCORE_API_KEYS_POLL_INTERVAL" default:"2s" help:"How often the API keys file is checked for changes."`
	OIDCIssuer          string        `name:"oidc-issuer" env:"BOXSCORE_OIDC_ISSUER" help:"Issuer of bearer JWTs (its discovery document gives the JWKS unless --oidc-jwks-url)."`
	OIDCAudience        string        `name:"oidc-audience" env:"BOXSCORE_OIDC_AUDIENCE" help:"Audience (aud) bearer JWTs must carry; required with --oidc-issuer."`
	OIDCJWKSURL         string        `name:"oidc-jwks-url" env:"BOXSCORE_OIDC_JWKS_URL" help:"JWKS URL, instead of the issuer's discovery document."`
	OIDCProducerClaim   string        `name:"oidc-producer-claim" env:"BOXSCORE_OIDC_PRODUCER_CLAIM" default:"sub" help:"JWT claim holding the producer name ([a-z0-9][a-z0-9._-]{0,62})."`
	OIDCScopesClaim     string        `name:"oidc-scopes-claim" env:"BOXSCORE_OIDC_SCOPES_CLAIM" default:"scope" help:"JWT claim holding the scopes (ingest, retract): a space-separated string or an array."`

	DefaultEventsPerSecond float64       `name:"default-events-per-second" env:"BOXSCORE_DEFAULT_EVENTS_PER_SECOND" default:"2000" help:"Quota of a producer without its own: events per second (bursts of a full request always fit)."`
	DefaultBytesPerSecond  float64       `name:"default-bytes-per-second" env:"BOXSCORE_DEFAULT_BYTES_PER_SECOND" default:"4000000" help:"Quota of a producer without its own: event bytes per second."`
	BodyReadTimeout        time.Duration `name:"body-read-timeout" env:"BOXSCORE_BODY_READ_TIMEOUT" default:"30s" help:"Longest time a request body (HTTP) or message (gRPC) may take to arrive; a slower one is cut off (408) and gives its in-flight budget back."`
	TrustTraceContext      bool          `name:"trust-trace-context" env:"BOXSCORE_TRUST_TRACE_CONTEXT" help:"Continue producers' traceparent (only for producers you trust); by default the server span is a new root linked to it."`
}

// authEnabled reports whether producers must authenticate.
func (c *producerConfig) authEnabled() bool { return c.APIKeysFile != "" || c.OIDCIssuer != "" }

func (c *producerConfig) validate() error {
	var errs []error
	if c.OIDCIssuer != "" && c.OIDCAudience == "" {
		errs = append(errs, errors.New("oidc-audience is required with oidc-issuer"))
	}
	if c.OIDCIssuer == "" && (c.OIDCAudience != "" || c.OIDCJWKSURL != "") {
		errs = append(errs, errors.New("oidc-audience and oidc-jwks-url need oidc-issuer"))
	}
	if c.APIKeysPollInterval < 100*time.Millisecond {
		errs = append(errs, errors.New("api-keys-poll-interval must be at least 100ms"))
	}
	if !(c.DefaultEventsPerSecond > 0) || !(c.DefaultBytesPerSecond > 0) {
		errs = append(errs, errors.New("default-events-per-second and default-bytes-per-second must be positive"))
	}
	if c.BodyReadTimeout < time.Second {
		errs = append(errs, errors.New("body-read-timeout must be at least 1s"))
	}
	return errors.Join(errs...)
}

func (c *config) Validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http-addr is required"))
	}
	// Without authentication anyone who reaches the ingest ports writes to the warehouse:
	// that is the local quickstart on loopback, or a choice made with --insecure.
	if !c.Producers.authEnabled() && !c.Server.Insecure {
		for _, addr := range []string{c.HTTPAddr, c.Server.GRPCAddr} {
			if addr != "" && !server.IsLoopback(addr) {
				errs = append(errs, fmt.Errorf("%s is beyond loopback without producer authentication: set --api-keys-file "+
					"and/or --oidc-issuer, bind 127.0.0.1, or set --insecure (BOXSCORE_INSECURE=true) to accept anonymous producers on purpose", addr))
			}
		}
	}
	return errors.Join(append(errs, c.Server.Validate(), c.Stream.Validate(), c.Publish.Validate(), c.Producers.validate())...)
}

// tap is installed on the gRPC server by spec and given its parts by setup.
var tap = &grpcapi.LateTap{}

var spec = server.Spec{
	Name:        "ingest-gateway",
	Description: "Accepts stat events from authenticated producers and puts them into the stream.",
	GRPCAddr:    "127.0.0.1:9001", AdminAddr: "127.0.0.1:9101",
	// Producers authenticate with API keys or tokens, not certificates.
	GRPCClientCertOptional: true,
	// gRPC reads a whole message before the handler runs: the tap reserves the largest
	// message of the in-flight budget when a stream opens (or refuses it), so the messages
	// held are bounded by the budget whatever clients do.
	// Metadata is bounded too (gRPC's default allows 16 MiB of headers per stream): 64 KiB
	// holds any token and the capped baggage many times over. PutStats requests are read by
	// grpcapi.Codec (protobuf's answers, faster).
	GRPCOptions: []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcapi.MaxRequestBytes), grpc.MaxConcurrentStreams(16), grpc.InTapHandle(tap.Handle),
		grpc.MaxHeaderListSize(grpcapi.MaxHeaderBytes), grpc.ForceServerCodecV2(grpcapi.Codec{}),
	},
}

func main() {
	var cfg config
	server.Main(spec, &cfg, func(ctx context.Context, svc *server.Service) error { return setup(ctx, svc, &cfg) })
}

func setup(ctx context.Context, svc *server.Service, cfg *config) error {
	kinesisClient, err := stream.NewKinesisClient(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	publisher, err := publish.New(kinesisClient, cfg.Stream.Name, cfg.Publish, svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	authn, err := newAuthenticator(ctx, svc, &cfg.Producers)
	if err != nil {
		return err
	}
	limiter := quota.New(quota.Limits{EventsPerSecond: cfg.Producers.DefaultEventsPerSecond, BytesPerSecond: cfg.Producers.DefaultBytesPerSecond},
		ingest.MaxBatchEvents, int(grpcapi.MaxRequestBytes), quota.DefaultMaxProducers)
	ingestService, err := ingest.NewService(publisher, svc.Meter, ingest.WithQuota(limiter))
	if err != nil {
		return err
	}
	grpcServer := grpcapi.NewServer(ingestService, svc.Logger, authn)
	tap.Set(&grpcapi.Tap{Svc: ingestService, Auth: authn, Server: grpcServer, ReadTimeout: cfg.Producers.BodyReadTimeout,
		TrustTrace: cfg.Producers.TrustTraceContext})
	ingestv1.RegisterIngestServiceServer(svc.Server.GRPC(), grpcServer)
	svc.Server.AddHTTP("public HTTP API", cfg.HTTPAddr, httpapi.NewHandler(ingestService, svc.Logger, httpapi.Options{
		Auth: authn, BodyReadTimeout: cfg.Producers.BodyReadTimeout, TrustTraceContext: cfg.Producers.TrustTraceContext,
		Propagator: tracetrust.Propagator(),
	}))
	svc.Server.AddReadyCheck("stream "+cfg.Stream.Name,
		readiness.NewStreamCheck(kinesisClient, cfg.Stream.Name, cfg.ReadyCacheTTL).Check)
	return nil
}

// newAuthenticator builds the configured producer authentication; with none configured,
// every producer is anonymous (Validate allowed that only on loopback or with --insecure).
func newAuthenticator(ctx context.Context, svc *server.Service, cfg *producerConfig) (*auth.Authenticator, error) {
	var keys *auth.KeyStore
	var verifier *auth.OIDCVerifier
	if cfg.APIKeysFile != "" {
		var err error
		if keys, err = auth.NewKeyStore(cfg.APIKeysFile, svc.Logger, svc.Meter); err != nil {
			return nil, err
		}
		svc.Server.AddWorker("api keys reload", func(ctx context.Context) error { return keys.Watch(ctx, cfg.APIKeysPollInterval) })
	}
	if cfg.OIDCIssuer != "" {
		var err error
		verifier, err = auth.NewOIDCVerifier(ctx, auth.OIDCConfig{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience, JWKSURL: cfg.OIDCJWKSURL,
			ProducerClaim: cfg.OIDCProducerClaim, ScopesClaim: cfg.OIDCScopesClaim}, svc.Logger)
		if err != nil {
			return nil, err
		}
	}
	authn := auth.New(keys, verifier)
	if authn.Enabled() {
		svc.Logger.Info("producers authenticate", "api_keys", cfg.APIKeysFile != "", "oidc_issuer", cfg.OIDCIssuer)
	} else {
		svc.Logger.Warn("producer authentication is off: every request is accepted as producer " + auth.AnonymousProducer)
	}
	return authn, nil
}
