// Package replay replays a season of game logs into the ingest gateway, day by day, as the
// season happened: the role the original design gave to a Lambda function reading the
// season's file from S3.
//
// It reads the whole game-log CSV (a local file or an S3 object) with package gamelog, groups
// the rows by game date, and sends the days in date order (within a day in file order), each
// in batches through package ingestclient, paced at --days-per-second. Malformed rows and events
// the gateway rejects are reported and counted; they never stop the valid rows. Event ids
// are derived from (player, game, version), so a second run, or a run resumed with
// --from-date after a crash, adds nothing twice.
package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/s3local"
)

// EventSource is the source field of the events the replay sends.
const EventSource = "replay"

// Command is `boxscore replay`.
type Command struct {
	Source        string        `arg:"" name:"source" help:"Game-log CSV to replay: s3://bucket/key or a local path."`
	Gateway       string        `name:"gateway" env:"BOXSCORE_GATEWAY_URL" default:"http://127.0.0.1:8080" help:"Base URL of the ingest gateway."`
	S3Endpoint    string        `name:"s3-endpoint" env:"BOXSCORE_S3_ENDPOINT" help:"S3 endpoint override (the local S3: http://127.0.0.1:4569). Empty: AWS."`
	AWSRegion     string        `name:"aws-region" env:"AWS_REGION" default:"us-east-1" help:"AWS region of the bucket."`
	DaysPerSecond float64       `name:"days-per-second" default:"0" help:"Pace: simulated days started per second (0: as fast as possible; 0.5: a day every 2 s)."`
	BatchSize     int           `name:"batch-size" default:"500" help:"Events per request to the gateway (1-500)."`
	FromDate      string        `name:"from-date" placeholder:"YYYY-MM-DD" help:"Skip the days before this date (to resume a replay that stopped)."`
	Progress      string        `name:"progress" enum:"auto,bar,log,none" default:"auto" help:"Progress on stderr: bar, log lines, none, or auto (a bar on a terminal, log lines otherwise)."`
	RetryBudget   time.Duration `name:"retry-budget" default:"1m" help:"How long one batch may be retried (gateway busy or unreachable) before the replay gives up."`
	credential.Flags
}

// Help is the long help of the command.
func (c *Command) Help() string {
	return `Replays a season's game log into the ingest gateway, day by day in date order, at
--days-per-second. Each day is sent in batches of at most --batch-size events.

Malformed CSV rows (reported as "line N, column C: ...") and events the gateway rejects as
invalid are reported on stderr and in the summary on stdout, and counted; they are not fatal
and never stop the valid rows. The exit status is non-zero only when the replay cannot go on:
the source cannot be read, or the gateway is unreachable or busy past --retry-budget, or
answers in a way retrying cannot fix.

Event ids are derived from (player, game, version), so replaying the same file again, or
resuming with --from-date after a crash, adds nothing twice: the warehouse keeps one line
per event id.

The API key (sent as a bearer token) is --api-key, else $BOXSCORE_API_KEY, else, for a
gateway on loopback only, the file .run/api-key that 'make up' writes (in the working
directory or at the root of its repository). A gateway that refuses it (401, 403) stops the replay at once.`
}

// Validate checks the flags (kong calls it after parsing).
func (c *Command) Validate() error {
	var errs []error
	if c.Source == "" {
		errs = append(errs, errors.New("a source (s3://bucket/key or a path) is required"))
	}
	if c.DaysPerSecond < 0 {
		errs = append(errs, fmt.Errorf("--days-per-second must be 0 or more, got %g", c.DaysPerSecond))
	}
	if c.BatchSize < 1 || c.BatchSize > ingestclient.MaxBatchEvents {
		errs = append(errs, fmt.Errorf("--batch-size must be between 1 and %d, got %d", ingestclient.MaxBatchEvents, c.BatchSize))
	}
	if c.FromDate != "" {
		if _, err := time.Parse(time.DateOnly, c.FromDate); err != nil {
			errs = append(errs, fmt.Errorf("--from-date %q is not a date (YYYY-MM-DD)", c.FromDate))
		}
	}
	switch c.Progress {
	case "", "auto", "bar", "log", "none":
	default:
		errs = append(errs, fmt.Errorf("--progress must be auto, bar, log or none, got %q", c.Progress))
	}
	return errors.Join(errs...)
}

// withDefaults fills what the struct tags default when the command is built without kong.
func (c Command) withDefaults() Command {
	if c.Gateway == "" {
		c.Gateway = "http://127.0.0.1:8080"
	}
	if c.BatchSize == 0 {
		c.BatchSize = ingestclient.MaxBatchEvents
	}
	if c.Progress == "" {
		c.Progress = "auto"
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = time.Minute
	}
	return c
}

// day is the rows of one game date, in file order.
type day struct {
	date string
	rows []gamelog.Row
}

// Run replays the source. The summary goes to stdout, progress and warnings to stderr. The
// error is non-nil only for a fatal problem (see Help); the summary is printed in every case
// once the source has been read.
func (c *Command) Run(ctx context.Context, stdout, stderr io.Writer) error {
	cfg := c.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	key, err := cfg.Resolve(cfg.Gateway)
	if err != nil {
		return err
	}
	began := time.Now()
	sum := &summary{source: cfg.Source, gateway: cfg.Gateway, fromDate: cfg.FromDate, rejections: map[string]*rejectionGroup{}}

	days, err := cfg.read(ctx, sum, stderr)
	if err != nil {
		return err
	}
	var totalEvents int
	for _, d := range days {
		totalEvents += len(d.rows)
	}
	prog := newProgress(cfg.Progress, stderr, len(days), totalEvents)
	client := ingestclient.New(cfg.Gateway,
		ingestclient.WithRetryBudget(cfg.RetryBudget),
		ingestclient.WithRetryNotify(prog.retry),
		key.Option(),
	)

	sendErr := key.Explain(cfg.send(ctx, client, days, sum, prog))
	prog.finish()
	sum.elapsed = time.Since(began)
	if err := sum.write(stdout); err != nil {
		return errors.Join(sendErr, fmt.Errorf("write summary: %w", err))
	}
	return sendErr
}

// read reads every row of the source, reporting malformed ones, and returns the days to
// send in date order.
func (c Command) read(ctx context.Context, sum *summary, stderr io.Writer) ([]day, error) {
	body, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	rd, err := gamelog.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.Source, err)
	}
	byDate := map[string]*day{}
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *gamelog.RowError
		if errors.As(err, &rowErr) {
			sum.rowsRead++
			sum.malformed = append(sum.malformed, rowErr)
			if _, werr := fmt.Fprintf(stderr, "replay: malformed row skipped: %v\n", rowErr); werr != nil {
				return nil, fmt.Errorf("write: %w", werr)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", c.Source, err)
		}
		sum.rowsRead++
		if c.FromDate != "" && row.GameDate < c.FromDate { // YYYY-MM-DD sorts as dates do
			sum.rowsSkipped++
			if byDate[row.GameDate] == nil {
				byDate[row.GameDate] = &day{date: row.GameDate} // counted as a skipped day, never sent
			}
			continue
		}
		d := byDate[row.GameDate]
		if d == nil {
			d = &day{date: row.GameDate}
			byDate[row.GameDate] = d
		}
		d.rows = append(d.rows, row)
	}
	days := make([]day, 0, len(byDate))
	for _, d := range byDate {
		if c.FromDate != "" && d.date < c.FromDate {
			sum.daysSkipped++
			continue
		}
		days = append(days, *d)
	}
	slices.SortFunc(days, func(a, b day) int { return cmp.Compare(a.date, b.date) })
	return days, nil
}

func (c Command) open(ctx context.Context) (io.ReadCloser, error) {
	if !s3local.IsURI(c.Source) {
		f, err := os.Open(c.Source)
		if err != nil {
			return nil, fmt.Errorf("open source: %w", err)
		}
		return f, nil
	}
	client, err := s3local.NewS3Client(ctx, c.S3Endpoint, c.AWSRegion)
	if err != nil {
		return nil, err
	}
	body, err := s3local.Open(ctx, client, c.Source)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	return body, nil
}

// send sends the days in order, starting one every 1/DaysPerSecond seconds.
func (c Command) send(ctx context.Context, client *ingestclient.Client, days []day, sum *summary, prog progress) error {
	var tick <-chan time.Time
	if c.DaysPerSecond > 0 {
		interval := max(time.Duration(float64(time.Second)/c.DaysPerSecond), time.Microsecond)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for i, d := range days {
		if i > 0 && tick != nil {
			// A day that took longer than the interval leaves one tick waiting (a ticker
			// drops the rest), so the replay catches up by one day, then keeps the cadence.
			select {
			case <-tick:
			case <-ctx.Done():
				sum.stoppedAt = d.date
				return fmt.Errorf("replay stopped before %s: %w", d.date, context.Cause(ctx))
			}
		}
		prog.dayStarted(i+1, d.date)
		if err := c.sendDay(ctx, client, d, sum, prog); err != nil {
			sum.stoppedAt = d.date
			return fmt.Errorf("day %s: %w", d.date, err)
		}
		sum.days++
		if sum.firstDate == "" {
			sum.firstDate = d.date
		}
		sum.lastDate = d.date
		prog.dayDone(i+1, d.date, sum)
	}
	return nil
}

func (c Command) sendDay(ctx context.Context, client *ingestclient.Client, d day, sum *summary, prog progress) error {
	for start := 0; start < len(d.rows); start += c.BatchSize {
		rows := d.rows[start:min(start+c.BatchSize, len(d.rows))]
		events := make([]*statsv1.StatEvent, len(rows))
		for i, row := range rows {
			events[i] = row.Event(EventSource)
		}
		res, err := client.Send(ctx, events)
		for _, msg := range sum.record(rows, res) {
			prog.warn(msg)
		}
		prog.eventsDone(sum)
		if err != nil {
			return err
		}
	}
	return nil
}
