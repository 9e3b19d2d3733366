// Command shard-consumer reads every shard of the Kinesis stream and moves the records
// through the transformer into the loader, committing each shard's checkpoint with its data.
package main

import (
	"context"
	"fmt"

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
	s.Tasks = []server.Task{lease.Schema.Task(&cfg.LeaseDatabaseURL, &cfg.LeaseSchema, cfg.LeaseDatabaseOptions)}
	server.Main(s, &cfg, func(ctx context.Context, svc *server.Service) error { return setup(ctx, svc, &cfg) })
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

	leasePool, err := postgres.NewPool(ctx, cfg.LeaseDatabaseURL, cfg.LeaseDatabaseOptions()...)
	if err != nil {
		return fmt.Errorf("lease store pool: %w", err)
	}
	svc.OnClose(leasePool.Close)
	if err := lease.Schema.Prepare(ctx, leasePool, cfg.LeaseSchema, cfg.Migrate, svc.Logger); err != nil {
		return err
	}
	leaseStore, err := lease.NewPostgresStore(leasePool, cfg.LeaseSchema)
	if err != nil {
		return err
	}
	leases, err := lease.NewManager(cfg.Lease(), leaseStore, lease.RealClock{}, svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	// The rows pass from the transformer's answer to the loader's request as bytes.
	transformer, loader := consumer.GRPCClients(transformerConn, loaderConn)
	c, err := consumer.New(cfg.Consumer(), kinesisClient, transformer, loader, leases, svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	// The consumer's readiness text is its own (not listed yet; stalled shards with their
	// reason and failing operation, never the upstream error): /readyz may show it.
	svc.Server.AddReadyCheck("shards", func(ctx context.Context) error {
		if err := c.Ready(ctx); err != nil {
			return server.PublicReason(err.Error())
		}
		return nil
	})
	svc.Server.AdminHandle("GET /leases", assignmentHandler(cfg.ConsumerID, leases, c))
	svc.Server.AddWorker("consumer", c.Run)
	return nil
}
