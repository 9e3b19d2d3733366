package retract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/retract"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
)

// gateway records each request's body and Authorization header and answers with answer.
type gateway struct {
	mu      sync.Mutex
	bodies  [][]byte
	auths   []string
	answer  func(w http.ResponseWriter)
	baseURL string
}

func startGateway(t *testing.T, answer func(w http.ResponseWriter)) *gateway {
	t.Helper()
	g := &gateway{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.bodies = append(g.bodies, body)
		g.auths = append(g.auths, r.Header.Get("Authorization"))
		g.mu.Unlock()
		if r.URL.Path != ingestapi.StatsPath || r.Header.Get("Content-Type") != ingestapi.MediaTypeNDJSON {
			http.Error(w, "wrong path or type", http.StatusNotFound)
			return
		}
		g.answer(w)
	}))
	t.Cleanup(srv.Close)
	g.baseURL = srv.URL
	return g
}

func accepted(eventID string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", ingestapi.MediaTypeJSON)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(ingestapi.Accepted{Accepted: 1, Results: []ingestapi.Result{
			{Index: 0, EventID: eventID, ShardID: "shardId-000000000001", SequenceNumber: "42"}}})
	}
}

func command(gatewayURL string) retract.Command {
	return retract.Command{
		Player: 660271, Game: " LAN202409290 ", EventVersion: 1_717_000_000_000_000, Reason: "reported twice by error",
		Source: "ops", Gateway: gatewayURL, RetryBudget: 2 * time.Second,
		Flags: credential.Flags{APIKey: "bsk_operator", Dir: "/nonexistent"},
	}
}

func TestRetractPostsOneTombstoneWithTheKey(t *testing.T) {
	wantID := retract.EventID(660271, "LAN202409290", 1_717_000_000_000_000)
	gw := startGateway(t, accepted(wantID))
	cmd := command(gw.baseURL)
	var stdout bytes.Buffer
	if err := cmd.Run(context.Background(), &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if len(gw.bodies) != 1 || gw.auths[0] != "Bearer bsk_operator" {
		t.Fatalf("%d requests, Authorization %q", len(gw.bodies), gw.auths)
	}
	lines := strings.Split(strings.TrimSpace(string(gw.bodies[0])), "\n")
	if len(lines) != 1 {
		t.Fatalf("body has %d lines, want one event: %s", len(lines), gw.bodies[0])
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	// protojson writes int64 as strings; the gateway reads both forms.
	want := map[string]any{
		"eventId":    wantID,
		"player":     map[string]any{"mlbId": "660271"},
		"game":       map[string]any{"gameId": "LAN202409290"},
		"version":    "1717000000000000",
		"source":     "ops",
		"retraction": map[string]any{"reason": "reported twice by error"},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("body\n %s\nwant\n %s", gotJSON, wantJSON)
	}
	if !strings.Contains(stdout.String(), "accepted") || !strings.Contains(stdout.String(), wantID) {
		t.Errorf("stdout %q does not say it was accepted as %s", stdout.String(), wantID)
	}
	if strings.Contains(stdout.String(), "bsk_operator") {
		t.Errorf("stdout %q shows the key", stdout.String())
	}
}

// Sending the same retraction again sends the same event id: the warehouse applies it once.
func TestTheSameRetractionHasTheSameIDAndAnotherVersionAnother(t *testing.T) {
	first, second, other := command(""), command(""), command("")
	a := first.Event().GetEventId()
	b := second.Event().GetEventId()
	other.EventVersion++
	if a != b || a == other.Event().GetEventId() {
		t.Fatalf("ids %s, %s, next version %s: want the first two equal and the third different", a, b, other.Event().GetEventId())
	}
	if line := retract.EventID(660271, "LAN202409290", 1_717_000_000_000_000); line != a {
		t.Fatalf("EventID = %s, Event().EventId = %s", line, a)
	}
}

func TestForbiddenIsReportedWithTheScopeToCheck(t *testing.T) {
	gw := startGateway(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", ingestapi.MediaTypeProblem)
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(ingestapi.Problem{Type: ingestapi.TypeURI("forbidden"), Title: "Forbidden",
			Status: http.StatusForbidden, Detail: "the producer may not retract"})
	})
	cmd := command(gw.baseURL)
	err := cmd.Run(context.Background(), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("a 403 was taken for success")
	}
	for _, want := range []string{"403", "the producer may not retract", "retract", "--api-key or $BOXSCORE_API_KEY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "bsk_operator") || len(gw.bodies) != 1 {
		t.Errorf("error %q shows the key, or %d requests (want 1: not retried)", err, len(gw.bodies))
	}
}

func TestValidateRefusesWhatTheGatewayWould(t *testing.T) {
	for name, mutate := range map[string]func(*retract.Command){
		"no player":         func(c *retract.Command) { c.Player = 0 },
		"blank game":        func(c *retract.Command) { c.Game = "  " },
		"version 0":         func(c *retract.Command) { c.EventVersion = 0 },
		"above the ceiling": func(c *retract.Command) { c.EventVersion = time.Now().Add(time.Hour).UnixMicro() },
		"blank reason":      func(c *retract.Command) { c.Reason = " " },
		"int64 max version": func(c *retract.Command) { c.EventVersion = 1<<63 - 1 },
	} {
		t.Run(name, func(t *testing.T) {
			c := command("http://127.0.0.1:1")
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	c := command("")
	c.EventVersion = time.Now().UnixMicro()
	if err := c.Validate(); err != nil {
		t.Fatalf("the current time in microseconds was refused: %v", err)
	}
}

// The retraction passes the gateway's own shape rules (pkg/statevent, which the fake gateway
// applies), and a key with the retract scope is what it takes.
func TestTheRetractionPassesTheGatewaysRulesWithTheRetractScope(t *testing.T) {
	gw := gatewaytest.Start(t)
	gw.RequireKeys(map[string][]string{"bsk_operator": {"ingest", "retract"}, "bsk_feed": {"ingest"}})
	cmd := command(gw.URL)
	cmd.EventVersion = time.Now().UnixMicro()
	if err := cmd.Run(context.Background(), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	accepted := gw.Accepted()
	if len(accepted) != 1 || accepted[0].GetRetraction().GetReason() != "reported twice by error" || accepted[0].GetBatting() != nil {
		t.Fatalf("accepted %v, want the one retraction", accepted)
	}

	cmd.APIKey = "bsk_feed"
	err := cmd.Run(context.Background(), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a key without the retract scope: err = %v, want a 403", err)
	}
}
