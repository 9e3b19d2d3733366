// Command loader commits curated rows, dead letters and shard checkpoints to the warehouse
// (PostgreSQL), one transaction per batch, so a checkpoint moves only with its data.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/services/loader/internal/grpcserver"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// Config is the loader's configuration: flags, BOXSCORE_* environment variables, defaults.
type Config struct {
	Server    server.Config    `embed:""`
	Telemetry telemetry.Config `embed:""`

	DatabaseURL string `name:"database-url" env:"BOXSCORE_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable" help:"PostgreSQL connection string of the warehouse (pgx pool settings such as pool_max_conns allowed)."`
	Schema      string `name:"warehouse-schema" env:"BOXSCORE_WAREHOUSE_SCHEMA" default:"boxscore" help:"Schema holding the warehouse tables."`
	Migrate     bool   `name:"migrate" env:"BOXSCORE_MIGRATE" default:"true" negatable:"" help:"Apply schema migrations at start."`
}

// Validate reports every problem with the config.
func (c *Config) Validate() error {
	errs := []error{c.Server.Validate(), migrations.ValidateSchema(c.Schema)}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("database-url is required"))
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, fmt.Errorf("database-url: %w", err))
	}
	return errors.Join(errs...)
}

func main() {
	var cfg Config
	kong.Parse(&cfg, kong.Name("loader"), kong.DefaultEnvars("BOXSCORE"),
		kong.Description("Commits curated rows, dead letters and shard checkpoints to the warehouse in one transaction per batch."),
		kong.Vars{"grpc_addr": "127.0.0.1:9003", "admin_addr": "127.0.0.1:9103"})
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loader:", err)
		os.Exit(1)
	}
}

func run(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger, tel, flushTelemetry, err := telemetry.Start(ctx, cfg.Telemetry, "loader")
	if err != nil {
		return err
	}
	defer flushTelemetry() // last, so the spans and metrics of the shutdown are exported too

	poolConfig, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database-url: %w", err)
	}
	// Statements run inside a traced Load become spans under it (no spans without a parent).
	poolConfig.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTrimSQLInSpanName())
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return fmt.Errorf("warehouse pool: %w", err)
	}
	defer pool.Close()
	if cfg.Migrate {
		if err := migrations.Apply(ctx, pool, cfg.Schema, logger); err != nil {
			return fmt.Errorf("migrate warehouse: %w", err)
		}
	}
	store, err := warehouse.NewStore(pool, cfg.Schema)
	if err != nil {
		return err
	}
	if err := store.Instrument(otel.Meter("github.com/boxscore-dev/boxscore/services/loader")); err != nil {
		return err
	}

	srv, err := server.New(cfg.Server, logger, tel)
	if err != nil {
		return err
	}
	loadv1.RegisterLoadServiceServer(srv.GRPC(), grpcserver.New(store, logger))
	srv.AddReadyCheck("warehouse", pool.Ping)
	logger.Info("starting loader", "version", buildinfo.String(), "schema", cfg.Schema)
	return srv.Run(ctx)
}
