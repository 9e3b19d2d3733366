// Command shard-consumer reads every shard of the Kinesis stream and moves the records
// through the transformer into the loader, committing each shard's checkpoint with its data.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/config"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

func main() {
	var cfg config.Config
	kong.Parse(&cfg, kong.Name("shard-consumer"), kong.DefaultEnvars("BOXSCORE"),
		kong.Description("Reads the stream's shards and commits them to the warehouse through the transformer and the loader."),
		kong.Vars{"grpc_addr": "127.0.0.1:9004", "admin_addr": "127.0.0.1:9104"})
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "shard-consumer:", err)
		os.Exit(1)
	}
}

func run(cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger, tel, flushTelemetry, err := telemetry.Start(ctx, cfg.Telemetry, "shard-consumer")
	if err != nil {
		return err
	}
	defer flushTelemetry() // last, so the spans and metrics of the shutdown are exported too

	kinesisClient, err := stream.NewKinesisClient(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	transformerConn, err := dial(cfg.TransformerAddr)
	if err != nil {
		return err
	}
	defer transformerConn.Close()
	loaderConn, err := dial(cfg.LoaderAddr)
	if err != nil {
		return err
	}
	defer loaderConn.Close()

	leasePool, err := pgxpool.New(ctx, cfg.LeaseDatabaseURL)
	if err != nil {
		return fmt.Errorf("lease store pool: %w", err)
	}
	defer leasePool.Close()
	if err := lease.Migrate(ctx, leasePool, cfg.LeaseSchema, logger); err != nil {
		return fmt.Errorf("migrate lease store: %w", err)
	}
	leaseStore, err := lease.NewPostgresStore(leasePool, cfg.LeaseSchema)
	if err != nil {
		return err
	}
	leases, err := lease.NewManager(cfg.Lease(), leaseStore, lease.RealClock{}, logger)
	if err != nil {
		return err
	}

	c, err := consumer.New(cfg.Consumer(), kinesisClient,
		transformv1.NewTransformServiceClient(transformerConn), loadv1.NewLoadServiceClient(loaderConn), leases, logger)
	if err != nil {
		return err
	}
	srv, err := server.New(cfg.Server, logger, tel)
	if err != nil {
		return err
	}
	srv.AddReadyCheck("shards", c.Ready)
	srv.AdminHandle("GET /leases", assignmentHandler(cfg.WorkerID(), leases, c))
	srv.AddWorker("consumer", c.Run)
	logger.Info("starting shard-consumer", "version", buildinfo.String(), "stream", cfg.Stream.Name)
	return srv.Run(ctx)
}

func dial(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(server.MaxMessageBytes), grpc.MaxCallSendMsgSize(server.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", addr, err)
	}
	return conn, nil
}
