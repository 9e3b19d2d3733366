// Command shard-consumer reads every shard of the Kinesis stream and moves the records
// through the transformer into the loader, committing each shard's checkpoint with its data.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/config"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

var spec = server.Spec{
	Name:        "shard-consumer",
	Description: "Reads the stream's shards and commits them to the warehouse through the transformer and the loader.",
	GRPCAddr:    "127.0.0.1:9004", AdminAddr: "127.0.0.1:9104",
}

func main() {
	var cfg config.Config
	s := spec
	s.Tasks = []server.Task{migrateTask(&cfg)}
	server.Main(s, &cfg, func(ctx context.Context, svc *server.Service) error { return setup(ctx, svc, &cfg) })
}

// migrateTask is `shard-consumer migrate`: the lease schema brought to this binary's
// version (a DDL-capable user), its version printed.
func migrateTask(cfg *config.Config) server.Task {
	return server.Task{
		Name: "migrate",
		Help: "Apply the lease schema migrations (a DDL-capable user), print the schema version and exit.",
		Run: func(ctx context.Context, logger *slog.Logger, stdout io.Writer) error {
			pool, err := postgres.NewPool(ctx, cfg.LeaseDatabaseURL)
			if err != nil {
				return fmt.Errorf("lease store pool: %w", err)
			}
			defer pool.Close()
			version, err := lease.MigrateAndCheck(ctx, pool, cfg.LeaseSchema, logger)
			if err != nil {
				return err
			}
			logger.Info("lease schema migrated", "schema", cfg.LeaseSchema, "version", version)
			_, err = fmt.Fprintf(stdout, "lease schema %q at version %d\n", cfg.LeaseSchema, version)
			return err
		},
	}
}

func setup(ctx context.Context, svc *server.Service, cfg *config.Config) error {
	kinesisClient, err := stream.NewKinesisClient(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	transformerConn, err := svc.Dial(cfg.TransformerAddr)
	if err != nil {
		return err
	}
	loaderConn, err := svc.Dial(cfg.LoaderAddr)
	if err != nil {
		return err
	}

	leasePool, err := postgres.NewPool(ctx, cfg.LeaseDatabaseURL)
	if err != nil {
		return fmt.Errorf("lease store pool: %w", err)
	}
	svc.OnClose(leasePool.Close)
	checkLease := lease.Check
	if cfg.Migrate {
		checkLease = func(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
			return lease.MigrateAndCheck(ctx, pool, schema, svc.Logger)
		}
	}
	leaseVersion, err := checkLease(ctx, leasePool, cfg.LeaseSchema)
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}
	svc.Logger.Info("lease schema checked", "schema", cfg.LeaseSchema, "version", leaseVersion)
	leaseStore, err := lease.NewPostgresStore(leasePool, cfg.LeaseSchema)
	if err != nil {
		return err
	}
	leases, err := lease.NewManager(cfg.Lease(), leaseStore, lease.RealClock{}, svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	c, err := consumer.New(cfg.Consumer(), kinesisClient, transformv1.NewTransformServiceClient(transformerConn),
		loadv1.NewLoadServiceClient(loaderConn), leases, svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	svc.Server.AddReadyCheck("shards", c.Ready)
	svc.Server.AdminHandle("GET /leases", assignmentHandler(cfg.ConsumerID, leases, c))
	svc.Server.AddWorker("consumer", c.Run)
	return nil
}
