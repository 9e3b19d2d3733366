// Command transformer is the Boxscore transform stage: a stateless gRPC service that turns
// the shard consumer's raw Kinesis records into curated batting rows and rejections. See
// README.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"go.opentelemetry.io/otel"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/services/transformer/internal/grpcserver"
)

type config struct {
	Server    server.Config    `embed:""`
	Telemetry telemetry.Config `embed:""`

	PrintConfig bool `name:"print-config" help:"Print the effective configuration as JSON and exit."`
}

func main() {
	var cfg config
	kong.Parse(&cfg, kong.Name("transformer"), kong.Description("Turns raw stream records into curated batting rows."),
		kong.DefaultEnvars("BOXSCORE"), kong.Vars{"grpc_addr": "127.0.0.1:9002", "admin_addr": "127.0.0.1:9102"})
	if cfg.PrintConfig {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "transformer: print config:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "transformer:", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled (a signal), then shuts down gracefully.
func run(ctx context.Context, cfg config) error {
	logger, tel, flushTelemetry, err := telemetry.Start(ctx, cfg.Telemetry, "transformer")
	if err != nil {
		return err
	}
	defer flushTelemetry() // last, so the spans and metrics of the shutdown are exported too

	svc, err := grpcserver.New(logger, otel.Meter("github.com/boxscore-dev/boxscore/services/transformer"))
	if err != nil {
		return err
	}
	srv, err := server.New(cfg.Server, logger, tel, grpcserver.ServerOptions()...)
	if err != nil {
		return err
	}
	transformv1.RegisterTransformServiceServer(srv.GRPC(), svc)
	logger.Info("starting transformer", "version", buildinfo.String())
	return srv.Run(ctx)
}
