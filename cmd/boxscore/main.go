// Command boxscore is the operator's CLI around the pipeline: extract game logs from the MLB
// Stats API, replay a season from CSV (local or S3) into the ingest API, retract a line,
// print the warehouse report, work with the warehouse's dead letters, make producer API
// keys, and run a local S3-compatible store for the demo.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/apikeys"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/dlq"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/extract"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/leaguegen"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/replay"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/report"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/retract"
	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	"github.com/boxscore-dev/boxscore/pkg/s3local"
)

// cli is the command tree. Each subcommand's flags live with its package.
type cli struct {
	Replay  replayCmd        `cmd:"" help:"Replay a game-log CSV (path or s3://bucket/key) into the ingest API, day by day."`
	Extract extractCmd       `cmd:"" help:"Pull batting lines from the MLB Stats API (players' season game logs, or the whole league's final games of some days) into CSV, or post them to the ingest API."`
	Report  reportCmd        `cmd:"" help:"Print the league leaderboard from the warehouse (by OPS, AVG, HR, ...; qualified batters for rates) and draw chosen players' cumulative OPS."`
	Retract retractCmd       `cmd:"" help:"Retract one (player, game) line: a tombstone through the ingest API removes it from the warehouse."`
	DLQ     dlqCmd           `cmd:"" name:"dlq" help:"Work with the warehouse's dead letters: list, show, replay through the ingest API, purge."`
	APIKey  apikeyCmd        `cmd:"" name:"apikey" help:"Make producer API keys for the ingest gateway's keys file, or hash a key kept elsewhere."`
	S3      s3Cmd            `cmd:"" name:"s3" help:"A local S3-compatible store for development and the demo."`
	Season  seasonCmd        `cmd:"" help:"Generate a simulated league season as a game-log CSV, to replay without the network."`
	Version kong.VersionFlag `help:"Print the version and exit."`
}

type dlqCmd struct {
	List   dlqListCmd   `cmd:"" help:"List dead letters, filtered by time, stage, reason and player."`
	Show   dlqShowCmd   `cmd:"" help:"Show everything stored of one dead letter, its payload decoded to the event's JSON."`
	Replay dlqReplayCmd `cmd:"" help:"Send dead letters back through the ingest API with a higher version, and mark them replayed."`
	Purge  dlqPurgeCmd  `cmd:"" help:"Delete dead letters older than --older-than and/or matching filters."`
}

type dlqListCmd struct{ dlq.ListCommand }

func (c *dlqListCmd) Run(ctx context.Context, s streams) error {
	return c.ListCommand.Run(ctx, s.stdout, s.stderr)
}

type dlqShowCmd struct{ dlq.ShowCommand }

func (c *dlqShowCmd) Run(ctx context.Context, s streams) error {
	return c.ShowCommand.Run(ctx, s.stdout, s.stderr)
}

type dlqReplayCmd struct{ dlq.ReplayCommand }

func (c *dlqReplayCmd) Run(ctx context.Context, s streams) error {
	return c.ReplayCommand.Run(ctx, s.stdout, s.stderr)
}

type dlqPurgeCmd struct{ dlq.PurgeCommand }

func (c *dlqPurgeCmd) Run(ctx context.Context, s streams) error {
	return c.PurgeCommand.Run(ctx, s.stdout, s.stderr)
}

type apikeyCmd struct {
	New  apikeyNewCmd  `cmd:"" help:"Make a key: its hash is appended to the keys file, the key shown once (or written to --key-out)."`
	Hash apikeyHashCmd `cmd:"" help:"Print the keys-file hash of a key read on stdin."`
}

type apikeyNewCmd struct{ apikeys.NewCommand }

func (c *apikeyNewCmd) Run(s streams) error { return c.NewCommand.Run(s.stdout, s.stderr) }

type apikeyHashCmd struct{ apikeys.HashCommand }

func (c *apikeyHashCmd) Run(s streams) error { return c.HashCommand.Run(s.stdin, s.stdout) }

type retractCmd struct{ retract.Command }

func (c *retractCmd) Run(ctx context.Context, s streams) error {
	return c.Command.Run(ctx, s.stdout, s.stderr)
}

type s3Cmd struct {
	Serve serveCmd `cmd:"" help:"Serve a local S3-compatible store on 127.0.0.1 until SIGTERM."`
	Put   putCmd   `cmd:"" help:"Upload a file to s3://bucket/key (the bucket is created when missing)."`
}

// streams are the process's output streams, bound once for every subcommand; kong binds
// by type, and two io.Writer parameters cannot be told apart.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type replayCmd struct{ replay.Command }

func (c *replayCmd) Run(ctx context.Context, s streams) error {
	return c.Command.Run(ctx, s.stdout, s.stderr)
}

type extractCmd struct{ extract.Command }

func (c *extractCmd) Run(ctx context.Context, s streams) error {
	return c.Command.Run(ctx, s.stdout, s.stderr)
}

type reportCmd struct{ report.Command }

func (c *reportCmd) Run(ctx context.Context, s streams) error { return c.Command.Run(ctx, s.stdout) }

type seasonCmd struct {
	Generate seasonGenerateCmd `cmd:"" help:"Simulate a whole major-league season (30 teams, ~1,300 players, corrections) and write it as a game-log CSV."`
}

type seasonGenerateCmd struct{ leaguegen.Command }

func (c *seasonGenerateCmd) Run(s streams) error { return c.Command.Run(s.stdout, s.stderr) }

type serveCmd struct{ s3local.ServeCommand }

func (c *serveCmd) Run(ctx context.Context, s streams) error {
	return c.ServeCommand.Run(ctx, s.stdout, s.stderr)
}

type putCmd struct{ s3local.PutCommand }

func (c *putCmd) Run(ctx context.Context, s streams) error {
	return c.PutCommand.Run(ctx, s.stdout, s.stderr)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var root cli
	kctx := kong.Parse(&root,
		kong.Name("boxscore"),
		kong.Description("Boxscore: extract, replay and report baseball batting lines."),
		kong.UsageOnError(),
		kong.Vars{"version": buildinfo.String()},
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(streams{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}),
	)
	if err := kctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "boxscore:", err)
		stop()
		os.Exit(1)
	}
}
