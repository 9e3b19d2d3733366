// Command ingest-gateway accepts batches of stat events over HTTP and gRPC, validates them
// and puts them into the Kinesis stream. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"google.golang.org/grpc"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/grpcapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/httpapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/readiness"
)

type config struct {
	Server    server.Config    `embed:""`
	Telemetry telemetry.Config `embed:""`
	Stream    stream.Config    `embed:""`
	Publish   publish.Config   `embed:""`

	HTTPAddr      string        `name:"http-addr" env:"BOXSCORE_HTTP_ADDR" default:"127.0.0.1:8080" help:"Address of the public HTTP API."`
	ReadyCacheTTL time.Duration `name:"ready-cache-ttl" env:"BOXSCORE_READY_CACHE_TTL" default:"5s" help:"How long a stream readiness answer is reused."`
	PrintConfig   bool          `name:"print-config" help:"Print the effective configuration as JSON and exit."`
}

func (c config) Validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http-addr is required"))
	}
	return errors.Join(append(errs, c.Server.Validate(), c.Stream.Validate(), c.Publish.Validate())...)
}

func kongOptions() []kong.Option {
	return []kong.Option{
		kong.Name("ingest-gateway"), kong.Description("Accepts stat events and puts them into the stream."),
		kong.DefaultEnvars("BOXSCORE"), kong.Vars{"grpc_addr": "127.0.0.1:9001", "admin_addr": "127.0.0.1:9101"},
	}
}

func main() {
	var cfg config
	kong.Parse(&cfg, kongOptions()...)
	if cfg.PrintConfig {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(cfg)
		return
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "ingest-gateway:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger, tel, flushTelemetry, err := telemetry.Start(ctx, cfg.Telemetry, "ingest-gateway")
	if err != nil {
		return err
	}
	defer flushTelemetry() // last, so the spans and metrics of the shutdown are exported too

	kinesisClient, err := stream.NewKinesisClient(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("kinesis client: %w", err)
	}
	publisher, err := publish.New(kinesisClient, cfg.Stream.Name, cfg.Publish, logger)
	if err != nil {
		return err
	}
	svc, err := ingest.NewService(publisher)
	if err != nil {
		return err
	}

	// gRPC reads a whole message before the handler can reserve its budget: bounding the
	// concurrent streams per connection bounds what gRPC clients can make it hold.
	srv, err := server.New(cfg.Server, logger, tel, grpc.MaxRecvMsgSize(grpcapi.MaxRequestBytes), grpc.MaxConcurrentStreams(16))
	if err != nil {
		return err
	}
	ingestv1.RegisterIngestServiceServer(srv.GRPC(), grpcapi.NewServer(svc, logger))
	srv.AddHTTP("public HTTP API", cfg.HTTPAddr, httpapi.NewHandler(svc, logger))
	srv.AddReadyCheck("stream "+cfg.Stream.Name, readiness.NewStreamCheck(kinesisClient, cfg.Stream.Name, cfg.ReadyCacheTTL).Check)
	logger.Info("starting ingest-gateway", "version", buildinfo.String(), "http_addr", cfg.HTTPAddr, "stream", cfg.Stream.Name)
	return srv.Run(ctx)
}
