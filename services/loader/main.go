// Command loader commits curated rows, dead letters and shard checkpoints to the warehouse
// (PostgreSQL, one transaction per batch, or Amazon Redshift, one transaction per window of
// batches staged in S3), so a checkpoint moves only with its data.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"go.opentelemetry.io/otel/metric"

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
	Engine      string           `name:"warehouse-engine" env:"BOXSCORE_WAREHOUSE_ENGINE" default:"postgresql" enum:"postgresql,redshift" help:"Warehouse engine: postgresql, or redshift (S3 staging, COPY and MERGE; see the --redshift-* flags)."`
	Redshift    redshiftConfig   `embed:""`
	Schema      string           `name:"warehouse-schema" env:"BOXSCORE_WAREHOUSE_SCHEMA" default:"boxscore" help:"Schema holding the warehouse tables."`
	// Migrate at start is the development default (a bare `loader`, make up, the tests: one
	// command with a DDL-capable user); the chart turns it off and runs `loader migrate` in
	// a pre-install/pre-upgrade Job, the loader then serving with a DML-only user. Either
	// way the loader serves only on a schema at exactly its newest migration.
	Migrate bool `name:"migrate" env:"BOXSCORE_MIGRATE" default:"true" negatable:"" help:"Apply schema migrations at start (development; in production run 'loader migrate' before and use --no-migrate). Without it the loader only checks the schema's version and refuses to start on another than its own."`

	DeadLetterRetention retention.Age `name:"dead-letter-retention" env:"BOXSCORE_DEAD_LETTER_RETENTION" default:"2160h" help:"Delete dead letters older than this (in batches, every 10 minutes); 0 keeps them forever."`
}

func (c *config) Validate() error {
	errs := []error{c.Server.Validate(), migrations.ValidateSchema(c.Schema), c.Redshift.validate(c.Engine, c.DatabaseIAM)}
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
		Tasks:       []server.Task{migrations.Task(&cfg.Engine, &cfg.DatabaseURL, &cfg.Schema, cfg.databaseOptions)},
	}
}

// databaseOptions are the warehouse pool's options from the parsed flags.
func (c *config) databaseOptions() []postgres.Option {
	return append(c.DatabaseIAM.Options(c.Server.Insecure), c.Redshift.Auth.Options()...)
}

// databaseURL is the warehouse URL the pool connects with: on Redshift in pgx's exec mode
// (see withExecMode).
func (c *config) databaseURL() (string, error) {
	if c.Engine != migrations.EngineRedshift {
		return c.DatabaseURL, nil
	}
	return withExecMode(c.DatabaseURL)
}

// warehouseStore is what setup needs of either engine's store.
type warehouseStore interface {
	grpcserver.Warehouse
	Instrument(meter metric.Meter) error
}

// defaultGCPercent is the loader's GOGC unless the environment sets one, as the
// transformer's: its live heap is small (the requests in flight, their rows converted and
// their COPY data), so at Go's default of 100 it collects a few batches apart; at 200 half
// as often. BenchmarkLoad500 (4 interleaved runs of 200 loads each, GOGC=100 then 200): the
// loader's CPU during the loads 0.093 -> 0.060 CPU-s per 10k rows (-35%), for a few more
// megabytes of heap. A GOMEMLIMIT (the chart's goMemLimitPercent) still caps the heap.
const defaultGCPercent = 200

func setup(ctx context.Context, svc *server.Service, cfg *config) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	url, err := cfg.databaseURL()
	if err != nil {
		return err
	}
	pool, err := postgres.NewPool(ctx, url, cfg.databaseOptions()...)
	if err != nil {
		return fmt.Errorf("warehouse pool: %w", err)
	}
	svc.OnClose(pool.Close)
	set, err := migrations.ForEngine(cfg.Engine)
	if err != nil {
		return err
	}
	if err := set.Prepare(ctx, pool, cfg.Schema, cfg.Migrate, svc.Logger); err != nil {
		return err
	}
	var store warehouseStore
	if cfg.Engine == migrations.EngineRedshift {
		rs, err := cfg.Redshift.newStore(ctx, pool, cfg.Schema, svc.Logger)
		if err != nil {
			return err
		}
		svc.Server.AddWorker("redshift-load-windows", rs.Run)
		store = rs
	} else {
		if store, err = warehouse.NewStore(pool, cfg.Schema); err != nil {
			return err
		}
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
	if cfg.Engine == migrations.EngineRedshift {
		// The retention's DELETE (FOR UPDATE SKIP LOCKED) is PostgreSQL's.
		svc.Logger.Warn("dead-letter retention is not run on Redshift: delete old dead letters there with a scheduled query", "dead_letter_retention", cfg.DeadLetterRetention)
		return nil
	}
	svc.Server.AddWorker("dead-letter-retention", retention.Runner(pool, cfg.Schema, cfg.DeadLetterRetention, svc.Meter, svc.Logger))
	return nil
}
