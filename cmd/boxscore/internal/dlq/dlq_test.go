package dlq_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/dlq"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// fixture: four dead letters of every payload form.
type fixture struct {
	old, other, garbage, load int64
}

func seed(t *testing.T, e *env) fixture {
	t.Helper()
	return fixture{
		old:     e.letter(t, "validate", "hits_exceed_at_bats", "ev-old", record(t, event(660271, "G1", 1, true)), 10*24*time.Hour),
		other:   e.letter(t, "validate", "runs_exceed_plate_appearances", "ev-other", record(t, event(605141, "G2", 3, true)), time.Hour),
		garbage: e.letter(t, "decode", "envelope_undecodable", "", []byte{0xff, 0x00, 0x01, 'x'}, 0),
		load:    e.letter(t, "load", "sqlstate_23514", "ev-load", rowPayload(t, 660271, "G3", 2), 0),
	}
}

func listIDs(t *testing.T, e *env, f dlq.Filters, limit int) []int64 {
	t.Helper()
	cmd := dlq.ListCommand{Warehouse: e.warehouse(), Filters: f, Limit: limit, JSON: true}
	out, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error { return cmd.Run(ctx, stdout, stderr) })
	if err != nil {
		t.Fatalf("list %+v: %v", f, err)
	}
	var ids []int64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("list --json line %q: %v", sc.Text(), err)
		}
		ids = append(ids, l.ID)
	}
	return ids
}

func TestListFilters(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	for _, tc := range []struct {
		name  string
		f     dlq.Filters
		limit int
		want  []int64
	}{
		{"all", dlq.Filters{}, 0, []int64{fx.old, fx.other, fx.garbage, fx.load}},
		{"stage", dlq.Filters{Stage: []string{"validate"}}, 0, []int64{fx.old, fx.other}},
		{"stages", dlq.Filters{Stage: []string{"decode", "load"}}, 0, []int64{fx.garbage, fx.load}},
		{"reason", dlq.Filters{Reason: []string{"hits_exceed_at_bats"}}, 0, []int64{fx.old}},
		{"player from an envelope and from a load row", dlq.Filters{Player: []int64{660271}}, 0, []int64{fx.old, fx.load}},
		{"other player", dlq.Filters{Player: []int64{605141}}, 0, []int64{fx.other}},
		{"since an age", dlq.Filters{Since: "2d"}, 0, []int64{fx.other, fx.garbage, fx.load}},
		{"until an age", dlq.Filters{Until: "30m"}, 0, []int64{fx.old, fx.other}},
		{"since a time", dlq.Filters{Since: time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)}, 0, []int64{fx.other, fx.garbage, fx.load}},
		{"combined", dlq.Filters{Stage: []string{"validate"}, Player: []int64{660271}, Since: "30d"}, 0, []int64{fx.old}},
		{"limit keeps the most recent", dlq.Filters{}, 2, []int64{fx.garbage, fx.load}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listIDs(t, e, tc.f, tc.limit); !slices.Equal(got, tc.want) {
				t.Fatalf("ids = %v, want %v", got, tc.want)
			}
		})
	}

	// The player and game were stored by the first list (payload_indexed), for the index.
	var indexed, withPlayer int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE payload_indexed), count(player_id) FROM boxscore.dead_letter`).Scan(&indexed, &withPlayer); err != nil {
		t.Fatal(err)
	}
	if indexed != 4 || withPlayer != 3 {
		t.Fatalf("indexed %d, with a player %d; want 4 and 3 (the undecodable one has none)", indexed, withPlayer)
	}

	table, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
		return (&dlq.ListCommand{Warehouse: e.warehouse(), Filters: dlq.Filters{Stage: []string{"validate"}}}).Run(ctx, stdout, stderr)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "WHEN", "STAGE", "REASON", "EVENT ID", "PLAYER", "GAME", "POSITION", "REPLAYED",
		"hits_exceed_at_bats", "660271", "G1", "ev-old", "shardId-000000000001/", "605141", " no"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	if _, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
		return (&dlq.ListCommand{Warehouse: e.warehouse(), Filters: dlq.Filters{Since: "yesterday"}}).Run(ctx, stdout, stderr)
	}); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Fatalf("a bad --since: %v", err)
	}
}

func show(t *testing.T, e *env, id int64, asJSON bool) string {
	t.Helper()
	out, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
		return (&dlq.ShowCommand{Warehouse: e.warehouse(), ID: id, JSON: asJSON}).Run(ctx, stdout, stderr)
	})
	if err != nil {
		t.Fatalf("show %d: %v", id, err)
	}
	return out
}

func TestShowDecodesThePayload(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)

	text := show(t, e, fx.old, false)
	for _, want := range []string{"hits_exceed_at_bats", "batting.hits", "a detail", "stats shardId-000000000001",
		"boxscore.stream.v1.Envelope", "application/x-protobuf; proto=boxscore.stats.v1.StatEvent", "accepted at", "2024-04-01T20:00:00Z",
		"traceparent", `"mlbId": "660271"`, `"hits": 5`, `"gameId": "G1"`, `"version": "1"`} {
		if !strings.Contains(text, want) {
			t.Errorf("show lacks %q:\n%s", want, text)
		}
	}

	garbage := show(t, e, fx.garbage, false)
	if !strings.Contains(garbage, "cannot be decoded") || !strings.Contains(garbage, "00000000  ff 00 01 78") {
		t.Errorf("an undecodable payload is not said so with a hex dump:\n%s", garbage)
	}

	load := show(t, e, fx.load, false)
	if !strings.Contains(load, "BattingGameRow") || !strings.Contains(load, `"gameId": "G3"`) || !strings.Contains(load, `"opponent": "SD"`) {
		t.Errorf("a load dead letter's row is not decoded to its event:\n%s", load)
	}

	var j struct {
		ID           int64           `json:"id"`
		PayloadForm  string          `json:"payloadForm"`
		PayloadError string          `json:"payloadError"`
		Payload      []byte          `json:"payload"`
		Event        json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal([]byte(show(t, e, fx.old, true)), &j); err != nil {
		t.Fatal(err)
	}
	if j.ID != fx.old || j.PayloadForm != "envelope" || !strings.Contains(string(j.Event), `"atBats":4`) {
		t.Errorf("show --json = %+v", j)
	}
	j = struct {
		ID           int64           `json:"id"`
		PayloadForm  string          `json:"payloadForm"`
		PayloadError string          `json:"payloadError"`
		Payload      []byte          `json:"payload"`
		Event        json.RawMessage `json:"event"`
	}{}
	if err := json.Unmarshal([]byte(show(t, e, fx.garbage, true)), &j); err != nil {
		t.Fatal(err)
	}
	if j.PayloadForm != "undecodable" || j.PayloadError == "" || !bytes.Equal(j.Payload, []byte{0xff, 0x00, 0x01, 'x'}) || j.Event != nil {
		t.Errorf("show --json of an undecodable payload = %+v", j)
	}

	if _, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
		return (&dlq.ShowCommand{Warehouse: e.warehouse(), ID: 999999}).Run(ctx, stdout, stderr)
	}); err == nil || !strings.Contains(err.Error(), "no dead letter 999999") {
		t.Fatalf("show of a missing id: %v", err)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	purge := func(c dlq.PurgeCommand) (string, error) {
		c.Warehouse = e.warehouse()
		out, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error { return c.Run(ctx, stdout, stderr) })
		return out, err
	}
	if _, err := purge(dlq.PurgeCommand{}); err == nil {
		t.Fatal("a purge without --older-than nor a filter ran")
	}
	out, err := purge(dlq.PurgeCommand{OlderThan: "7d", DryRun: true})
	if err != nil || !strings.Contains(out, "1 dead letters would be deleted") {
		t.Fatalf("dry run: %q, %v", out, err)
	}
	if got := listIDs(t, e, dlq.Filters{}, 0); len(got) != 4 {
		t.Fatalf("a dry run deleted: %v left", got)
	}
	out, err = purge(dlq.PurgeCommand{OlderThan: "30m", Filters: dlq.Filters{Stage: []string{"validate"}}})
	if err != nil || !strings.Contains(out, "2 dead letters deleted") {
		t.Fatalf("purge: %q, %v", out, err)
	}
	if got := listIDs(t, e, dlq.Filters{}, 0); !slices.Equal(got, []int64{fx.garbage, fx.load}) {
		t.Fatalf("left %v, want %v", got, []int64{fx.garbage, fx.load})
	}
	out, err = purge(dlq.PurgeCommand{Filters: dlq.Filters{Player: []int64{660271}}})
	if err != nil || !strings.Contains(out, "1 dead letters deleted") {
		t.Fatalf("purge by player: %q, %v", out, err)
	}
	if got := listIDs(t, e, dlq.Filters{}, 0); !slices.Equal(got, []int64{fx.garbage}) {
		t.Fatalf("left %v, want %v", got, []int64{fx.garbage})
	}
}

// Rows the loader wrote carry their player and game already (payload_indexed): the
// commands leave them alone and decode only the rows an older loader wrote, with the
// loader's rule, a game id holding NUL included (stored as U+FFFD, not refused).
func TestIndexDecodesOnlyOlderRows(t *testing.T) {
	e := newEnv(t)
	older := e.letter(t, "validate", "hits_exceed_at_bats", "ev-nul", record(t, event(660271, "G\x00nul", 1, true)), time.Hour)
	byLoader := e.letter(t, "validate", "hits_exceed_at_bats", "ev-new", record(t, event(605141, "G2", 1, true)), 0)
	// As the loader stores it; a different player than the payload's shows a re-decode.
	if _, err := e.pool.Exec(t.Context(), `UPDATE boxscore.dead_letter SET player_id = 1, game_id = 'G-loader', payload_indexed = true WHERE id = $1`, byLoader); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, e, dlq.Filters{Player: []int64{660271, 1}}, 0); !slices.Equal(got, []int64{older, byLoader}) {
		t.Fatalf("ids = %v, want %v", got, []int64{older, byLoader})
	}
	for id, want := range map[int64]string{older: "G\uFFFDnul", byLoader: "G-loader"} {
		var game string
		var indexed bool
		if err := e.pool.QueryRow(t.Context(), `SELECT game_id, payload_indexed FROM boxscore.dead_letter WHERE id = $1`, id).Scan(&game, &indexed); err != nil {
			t.Fatal(err)
		}
		if game != want || !indexed {
			t.Errorf("dead letter %d: game_id %q, indexed %t; want %q, true", id, game, indexed, want)
		}
	}
}

// The producer the loader recorded is listed, filtered on and shown; a letter stored without
// it (before migration 00010) shows the producer its record carries.
func TestTheProducerIsListedFilteredAndShown(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	if _, err := e.pool.Exec(t.Context(), `UPDATE boxscore.dead_letter SET producer = 'scorer' WHERE id = $1`, fx.other); err != nil {
		t.Fatal(err)
	}
	ev := event(518692, "G4", 1, true)
	data, err := statevent.EncodeProducerEnvelope(ev, "nightly-feed", time.Date(2024, 4, 1, 20, 0, 0, 0, time.UTC), nil)
	if err != nil {
		t.Fatal(err)
	}
	unrecorded := e.letter(t, "validate", "hits_exceed_at_bats", "ev-unrecorded", data, 0)

	if got := listIDs(t, e, dlq.Filters{Producer: []string{"scorer"}}, 0); !slices.Equal(got, []int64{fx.other}) {
		t.Fatalf("--producer scorer: ids %v, want [%d]", got, fx.other)
	}
	table, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
		return (&dlq.ListCommand{Warehouse: e.warehouse()}).Run(ctx, stdout, stderr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, "PRODUCER") || !strings.Contains(table, "scorer") {
		t.Fatalf("the table lacks the producer:\n%s", table)
	}

	var shown struct {
		Producer string `json:"producer"`
	}
	if err := json.Unmarshal([]byte(show(t, e, fx.other, true)), &shown); err != nil || shown.Producer != "scorer" {
		t.Fatalf("show --json producer %q (%v), want scorer", shown.Producer, err)
	}
	if text := show(t, e, unrecorded, false); !strings.Contains(text, "nightly-feed") {
		t.Fatalf("show of a letter without a stored producer lacks its record's:\n%s", text)
	}
	if text := show(t, e, fx.garbage, false); !regexp.MustCompile(`(?m)^producer\s+-$`).MatchString(text) {
		t.Fatalf("show of an undecodable letter without a producer:\n%s", text)
	}
}
