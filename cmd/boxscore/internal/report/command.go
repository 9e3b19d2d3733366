package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

// Command is the `report` CLI command (kong): it prints a season's batting
// leaderboard from the warehouse (PostgreSQL or Amazon Redshift, see connect) and
// writes the cumulative OPS chart.
type Command struct {
	DatabaseURL string `name:"database-url" env:"BOXSCORE_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable" help:"PostgreSQL connection string of the warehouse (Amazon Redshift: postgres://user@host:5439/dev?sslmode=verify-full...)."`
	Engine      string `name:"warehouse-engine" env:"BOXSCORE_WAREHOUSE_ENGINE" default:"auto" enum:"auto,postgresql,redshift" help:"The warehouse's engine: postgresql, redshift (every query in the simple protocol, no prepared statement), or auto (asked with SELECT version())."`
	Schema      string `name:"warehouse-schema" env:"BOXSCORE_WAREHOUSE_SCHEMA" default:"boxscore" help:"Schema holding the warehouse tables and views."`
	Season      int    `name:"season" default:"2024" help:"Season to report on."`
	Chart       string `name:"chart" default:"out/ops-by-date.svg" help:"Where to write the cumulative OPS chart (SVG); missing directories are created."`
	Note        string `name:"note" help:"Subtitle of the chart: say where the numbers come from (for example that they are simulated)."`

	// tracer, set by tests, sees every query the report sends.
	tracer pgx.QueryTracer
}

// Run prints the leaderboard to stdout, writes the chart to c.Chart and says
// where it went. A season without games is an error: there is nothing to
// report, and most likely the pipeline has not loaded anything yet.
func (c *Command) Run(ctx context.Context, stdout io.Writer) (err error) {
	engine := c.Engine
	if engine == "" {
		engine = engineAuto
	}
	warehouse, err := connect(ctx, c.DatabaseURL, engine, c.tracer)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := warehouse.conn.Close(context.WithoutCancel(ctx)); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("report: close the warehouse connection: %w", closeErr))
		}
	}()

	board, err := seasonview.Season(ctx, warehouse.db, c.Schema, c.Season)
	if err != nil {
		return err
	}
	if len(board) == 0 {
		return fmt.Errorf("report: no batting lines for season %d in schema %s", c.Season, c.Schema)
	}
	cumulative, err := seasonview.CumulativeOPS(ctx, warehouse.db, c.Schema, c.Season)
	if err != nil {
		return err
	}

	var chart bytes.Buffer
	title := fmt.Sprintf("Cumulative OPS by date, %d season", c.Season)
	if err := WriteOPSChartSVG(&chart, cumulative, title, c.Note); err != nil {
		return err
	}

	heading := fmt.Sprintf("Batting, %d season\n", c.Season)
	if c.Note != "" {
		heading += c.Note + "\n" // the table, too, says where its numbers come from
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", heading); err != nil {
		return fmt.Errorf("report: write leaderboard: %w", err)
	}
	if err := WriteTable(stdout, board); err != nil {
		return err
	}
	if err := writeFileAtomically(c.Chart, chart.Bytes()); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "\nCumulative OPS chart: %s\n", c.Chart); err != nil {
		return fmt.Errorf("report: write leaderboard: %w", err)
	}
	return nil
}

// writeFileAtomically writes data to path through a temporary file in the same
// directory, so a failed run never leaves half a chart where the last good one
// was. Missing directories are created.
func writeFileAtomically(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: create chart directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("report: write chart: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name()) // best effort: the write already failed
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write error is the one to report
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	return nil
}
