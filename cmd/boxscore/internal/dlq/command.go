// Package dlq is `boxscore dlq`: list, show, replay and purge the warehouse's dead letters
// (the records the pipeline could not turn into rows, in <schema>.dead_letter).
//
// The player and game of a dead letter are decoded from its payload (a Kinesis record, or
// for stage load the curated row as protojson) and stored in player_id and game_id
// (migration 00008) by the loader when it inserts the dead letter (deadletter.DecodePayload,
// the rule these commands use too). Rows written by an older loader are decoded and stored
// by these commands before they query (payload_indexed), since SQL cannot read protobuf.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Command is `boxscore dlq`.
type Command struct {
	List   ListCommand   `cmd:"" help:"List dead letters, filtered by time, stage, reason and player."`
	Show   ShowCommand   `cmd:"" help:"Show everything stored of one dead letter, its payload decoded to the event's JSON."`
	Replay ReplayCommand `cmd:"" help:"Send dead letters back through the ingest API with a higher version, and mark them replayed."`
	Purge  PurgeCommand  `cmd:"" help:"Delete dead letters older than --older-than and/or matching filters."`
}

// Warehouse are the connection flags of every dlq command.
type Warehouse struct {
	DatabaseURL string `name:"database-url" env:"BOXSCORE_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable" help:"PostgreSQL connection string of the warehouse."`
	Schema      string `name:"warehouse-schema" env:"BOXSCORE_WAREHOUSE_SCHEMA" default:"boxscore" help:"Schema holding the warehouse tables."`
}

func (w Warehouse) open(ctx context.Context) (*store, error) {
	url, schema := w.DatabaseURL, w.Schema
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable"
	}
	if schema == "" {
		schema = "boxscore"
	}
	return openStore(ctx, url, schema)
}

// Filters are the selection flags of list, replay and purge.
type Filters struct {
	Since    string   `name:"since" placeholder:"TIME" help:"Only dead letters created at or after TIME: RFC 3339 (2024-06-01T12:00:00Z), a date (2024-06-01, UTC) or an age (36h, 7d)."`
	Until    string   `name:"until" placeholder:"TIME" help:"Only dead letters created before TIME (same forms as --since)."`
	Stage    []string `name:"stage" help:"Only these stages (decode, validate, load); repeat or separate with commas."`
	Reason   []string `name:"reason" help:"Only these reasons (e.g. hits_exceed_at_bats, sqlstate_22021)."`
	Player   []int64  `name:"player" help:"Only these players (MLB id, decoded from the payload)."`
	Producer []string `name:"producer" help:"Only dead letters of these producers (the authenticated sender the loader recorded)."`
	Pending  bool     `name:"pending" help:"Only dead letters never replayed."`
}

func (f Filters) filter(now time.Time) (Filter, error) {
	var out Filter
	var errs []error
	var err error
	if out.Since, err = parseTime(f.Since, now); err != nil {
		errs = append(errs, fmt.Errorf("--since: %w", err))
	}
	if out.Until, err = parseTime(f.Until, now); err != nil {
		errs = append(errs, fmt.Errorf("--until: %w", err))
	}
	out.Stages, out.Reasons, out.Players, out.Producers, out.NotReplayed = f.Stage, f.Reason, f.Player, f.Producer, f.Pending
	return out, errors.Join(errs...)
}

// parseTime reads an RFC 3339 time, a date (midnight UTC) or an age before now. "" is zero.
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := parseAge(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a date (YYYY-MM-DD) nor an age (36h, 7d)", s)
}

// parseAge reads a Go duration, or a whole number of days ("90d"). It must be positive.
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (36h, 7d)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive age", s)
	}
	return d, nil
}

// withStore opens the warehouse, indexes the payloads not yet decoded, runs fn and closes.
func withStore(ctx context.Context, w Warehouse, stderr io.Writer, fn func(*store) error) (err error) {
	s, err := w.open(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close(ctx)) }()
	if err := s.indexOrWarn(ctx, func(msg string) { fmt.Fprintln(stderr, "warning:", msg) }); err != nil {
		return err
	}
	return fn(s)
}
