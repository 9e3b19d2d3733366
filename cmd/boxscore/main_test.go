package main

import (
	"slices"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
)

// parser is the CLI's own parser, as main builds it, failing the test instead of exiting.
func parser(t *testing.T, root *cli) *kong.Kong {
	t.Helper()
	p, err := kong.New(root, kong.Name("boxscore"), kong.Vars{"version": buildinfo.String()},
		kong.Exit(func(code int) { t.Fatalf("kong exited with %d", code) }))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The new commands parse as documented in the README, through the whole command tree: a flag
// of a subcommand that clashes with a global one (--version) shows up here, not in the
// package tests that build commands by hand.
func TestTheDocumentedCommandLinesParse(t *testing.T) {
	t.Setenv("BOXSCORE_API_KEY", "")
	t.Setenv("BOXSCORE_API_KEYS_FILE", "")

	var root cli
	ctx, err := parser(t, &root).Parse([]string{"retract", "--player", "660271", "--game", "LAN202409290",
		"--event-version", "1727654400000000", "--reason", "reported twice", "--source", "ops", "--api-key", "bsk_x"})
	if err != nil {
		t.Fatal(err)
	}
	r := root.Retract
	if ctx.Command() != "retract" || r.Player != 660271 || r.Game != "LAN202409290" || r.EventVersion != 1727654400000000 ||
		r.Reason != "reported twice" || r.Source != "ops" || r.APIKey != "bsk_x" {
		t.Fatalf("retract parsed as %q %+v", ctx.Command(), r)
	}

	root = cli{}
	ctx, err = parser(t, &root).Parse([]string{"apikey", "new", "--producer", "scorer", "--scopes", "ingest,retract",
		"--sources", "a,b", "--events-per-second", "50", "--bytes-per-second", "100000", "--keys-file", "keys.yaml", "--key-out", "scorer.key"})
	if err != nil {
		t.Fatal(err)
	}
	n := root.APIKey.New
	if ctx.Command() != "apikey new" || n.Producer != "scorer" || !slices.Equal(n.Scopes, []string{"ingest", "retract"}) ||
		!slices.Equal(n.Sources, []string{"a", "b"}) || n.EventsPerSecond != 50 || n.BytesPerSecond != 100000 ||
		n.KeysFile != "keys.yaml" || n.KeyOut != "scorer.key" {
		t.Fatalf("apikey new parsed as %q %+v", ctx.Command(), n)
	}

	root = cli{}
	if ctx, err = parser(t, &root).Parse([]string{"apikey", "hash"}); err != nil || ctx.Command() != "apikey hash" {
		t.Fatalf("apikey hash: %q, %v", ctx.Command(), err)
	}

	// The key comes from the environment for every command that posts.
	t.Setenv("BOXSCORE_API_KEY", "bsk_from-env")
	for _, args := range [][]string{
		{"replay", "season.csv"},
		{"extract", "--player", "660271", "--season", "2024", "--post"},
		{"dlq", "replay", "--id", "1"},
		{"retract", "--player", "1", "--game", "G", "--event-version", "2", "--reason", "r"},
	} {
		root = cli{}
		if _, err := parser(t, &root).Parse(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		keys := map[string]string{"replay": root.Replay.APIKey, "extract": root.Extract.APIKey,
			"dlq": root.DLQ.Replay.APIKey, "retract": root.Retract.APIKey}
		if got := keys[args[0]]; got != "bsk_from-env" {
			t.Errorf("%v: api key %q, want the environment's", args, got)
		}
	}
}
