package dlq

import (
	"context"
	"fmt"
	"io"
	"time"
)

// PurgeCommand is `boxscore dlq purge`.
type PurgeCommand struct {
	Warehouse `embed:""`
	Filters   `embed:""`
	OlderThan string `name:"older-than" placeholder:"AGE" help:"Only dead letters created more than AGE ago (36h, 90d)."`
	DryRun    bool   `name:"dry-run" help:"Count what would be deleted; delete nothing."`
}

// Help is the long help of the command.
func (c *PurgeCommand) Help() string {
	return `Deletes the dead letters older than --older-than and matching the filters (all of them
must hold), in batches, and prints how many. --older-than or a filter is required: purge
never deletes the whole table by accident. The loader also deletes dead letters older than
its --dead-letter-retention on its own.`
}

// Run deletes (or counts) the dead letters selected.
func (c *PurgeCommand) Run(ctx context.Context, stdout, stderr io.Writer) error {
	f, err := c.filter(time.Now())
	if err != nil {
		return err
	}
	if c.OlderThan != "" {
		if f.OlderThan, err = parseAge(c.OlderThan); err != nil {
			return fmt.Errorf("--older-than: %w", err)
		}
	}
	if f.empty() {
		return fmt.Errorf("say which dead letters to purge: --older-than and/or a filter (--since, --until, --stage, --reason, --player)")
	}
	return withStore(ctx, c.Warehouse, stderr, func(s *store) error {
		if c.DryRun {
			n, err := s.count(ctx, f)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%d dead letters would be deleted (dry run)\n", n)
			return err
		}
		n, err := s.purge(ctx, f)
		if _, werr := fmt.Fprintf(stdout, "%d dead letters deleted\n", n); werr != nil && err == nil {
			err = werr
		}
		return err
	})
}
