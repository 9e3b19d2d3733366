// Command loader commits curated rows, dead letters and shard checkpoints to the warehouse
// (PostgreSQL), one transaction per batch, so a checkpoint moves only with its data.
package main

import (
	"context"
	"errors"
	"fmt"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/services/loader/internal/grpcserver"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/retention"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// config is the loader's configuration: flags, BOXSCORE_* environment variables, defaults.
type config struct {
	server.Base `embed:""`

	DatabaseURL string           `name:"database-url" env:"BOXSCORE_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable" help:"PostgreSQL connection string of the warehouse (pgx pool settings such as pool_max_conns allowed). Beyond loopback it needs sslmode=verify-full (or verify-ca) and sslrootcert=/path/ca.pem, unless --insecure."`
	DatabaseIAM postgres.IAMAuth `embed:""`
	Schema      string           `name:"warehouse-schema" env:"BOXSCORE_WAREHOUSE_SCHEMA" default:"boxscore" help:"Schema holding the warehouse tables."`
	// Migrate at start is the development default (a bare `loader`, make up, the tests: one
	// command with a DDL-capable user); the chart turns it off and runs `loader migrate` in
	// a pre-install/pre-upgrade Job, the loader then serving with a DML-only user. Either
	// way the loader serves only on a schema at exactly its newest migration.
	Migrate bool `name:"migrate" env:"BOXSCORE_MIGRATE" default:"true" negatable:"" help:"Apply schema migrations at start (development; in production run 'loader migrate' before and use --no-migrate). Without it the loader only checks the schema's version and refuses to start on another than its own."`

	DeadLetterRetention retention.Age `name:"dead-letter-retention" env:"BOXSCORE_DEAD_LETTER_RETENTION" default:"2160h" help:"Delete dead letters older than this (in batches, every 10 minutes); 0 keeps them forever."`
}

func (c *config) Validate() error {
	errs := []error{c.Server.Validate(), migrations.ValidateSchema(c.Schema)}
	if err := postgres.CheckURL(c.DatabaseURL, c.Server.Insecure); err != nil {
		errs = append(errs, fmt.Errorf("database-url: %w", err))
	}
	return errors.Join(errs...)
}

func main() {
	var cfg config
	server.Main(newSpec(&cfg), &cfg, func(ctx context.Context, svc *server.Service) error { return setup(ctx, svc, &cfg) })
}

// newSpec describes the loader to server.Main, its migrate task reading cfg. With TLS only
// the shard consumer may call it: ClaimShard and Load move checkpoints and write rows.
func newSpec(cfg *config) server.Spec {
	return server.Spec{
		Name:        "loader",
		Description: "Commits curated rows, dead letters and shard checkpoints to the warehouse in one transaction per batch.",
		GRPCAddr:    "127.0.0.1:9003", AdminAddr: "127.0.0.1:9103",
		GRPCClients: []string{"shard-consumer"},
		Tasks:       []server.Task{migrations.Schema.Task(&cfg.DatabaseURL, &cfg.Schema, cfg.databaseOptions)},
	}
}

// databaseOptions are the warehouse pool's options from the parsed flags.
func (c *config) databaseOptions() []postgres.Option {
	return c.DatabaseIAM.Options(c.Server.Insecure)
}

func setup(ctx context.Context, svc *server.Service, cfg *config) error {
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, cfg.databaseOptions()...)
	if err != nil {
		return fmt.Errorf("warehouse pool: %w", err)
	}
	svc.OnClose(pool.Close)
	if err := migrations.Schema.Prepare(ctx, pool, cfg.Schema, cfg.Migrate, svc.Logger); err != nil {
		return err
	}
	store, err := warehouse.NewStore(pool, cfg.Schema)
	if err != nil {
		return err
	}
	if err := store.Instrument(svc.Meter); err != nil {
		return err
	}
	loadv1.RegisterLoadServiceServer(svc.Server.GRPC(), grpcserver.New(store, svc.Logger))
	svc.Server.AddReadyCheck("warehouse", func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			// The driver's text names hosts and users: it goes to the log, not to /readyz.
			return fmt.Errorf("%w: %w", server.PublicReason("database unreachable"), err)
		}
		return nil
	})
	svc.Server.AddWorker("dead-letter-retention", retention.Runner(pool, cfg.Schema, cfg.DeadLetterRetention, svc.Meter, svc.Logger))
	return nil
}
