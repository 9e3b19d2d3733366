package ingestclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// event returns a valid batting line of player n with a deterministic id.
func event(n int) *statsv1.StatEvent {
	i := func(v int32) *int32 { return &v }
	playerID := int64(600000 + n)
	return &statsv1.StatEvent{
		EventId: statevent.DeterministicEventID(playerID, "LAN202404010", 1),
		Player:  &statsv1.Player{MlbId: playerID, Name: fmt.Sprintf("Player %d", n), Team: "LAD"},
		Game: &statsv1.Game{GameId: "LAN202404010", Date: "2024-04-01", Opponent: "SF",
			HomeAway: statsv1.HomeAway_HOME_AWAY_HOME, Season: 2024},
		Batting: &statsv1.BattingLine{PlateAppearances: i(4), AtBats: i(4), Runs: i(0), Hits: i(1), Doubles: i(0),
			Triples: i(0), HomeRuns: i(0), Rbi: i(0), BaseOnBalls: i(0), IntentionalWalks: i(0), StrikeOuts: i(1),
			HitByPitch: i(0), SacBunts: i(0), SacFlies: i(0), StolenBases: i(0), CaughtStealing: i(0), GroundIntoDoublePlay: i(0)},
		Version: 1,
		Source:  "test",
	}
}

func events(n int) []*statsv1.StatEvent {
	evs := make([]*statsv1.StatEvent, n)
	for i := range evs {
		evs[i] = event(i)
	}
	return evs
}

// fastRetries keeps backoff waits short; Retry-After waits are what the gateway says.
func fastRetries() []ingestclient.Option {
	return []ingestclient.Option{ingestclient.WithBackoff(5*time.Millisecond, 20*time.Millisecond), ingestclient.WithRetryBudget(10 * time.Second)}
}

func ids(evs []*statsv1.StatEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetEventId()
	}
	return out
}

func TestAcceptedBatchReportsWhereEachEventWent(t *testing.T) {
	gw := gatewaytest.Start(t)
	evs := events(3)
	res, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(ingestclient.StatusAccepted) != 3 || res.Requests != 1 {
		t.Fatalf("accepted %d in %d requests, want 3 in 1", res.Count(ingestclient.StatusAccepted), res.Requests)
	}
	for i, r := range res.Events {
		if r.EventID != evs[i].GetEventId() || r.ShardID == "" || r.SequenceNumber == "" {
			t.Errorf("event %d: %+v", i, r)
		}
	}
	reqs := gw.Requests()
	if reqs[0].ContentType != "application/x-ndjson" || !strings.HasPrefix(reqs[0].UserAgent, "boxscore-ingestclient/") {
		t.Errorf("request content type %q, user agent %q", reqs[0].ContentType, reqs[0].UserAgent)
	}
	if got := ids(reqs[0].Events); strings.Join(got, ",") != strings.Join(ids(evs), ",") {
		t.Errorf("sent ids %v, want %v in order", got, ids(evs))
	}
}

func TestSplitsIntoRequestsOfAtMost500(t *testing.T) {
	gw := gatewaytest.Start(t)
	res, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), events(1100))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range gw.Requests() {
		sizes = append(sizes, len(r.Events))
	}
	if fmt.Sprint(sizes) != "[500 500 100]" || res.Count(ingestclient.StatusAccepted) != 1100 {
		t.Fatalf("request sizes %v, accepted %d", sizes, res.Count(ingestclient.StatusAccepted))
	}
}

func TestRetryAfterSecondsIsHonoured(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			gw := gatewaytest.Start(t)
			gw.FailNext(gatewaytest.Fault{Status: status, RetryAfter: "1"})
			var notices []ingestclient.RetryNotice
			c := ingestclient.New(gw.URL, append(fastRetries(),
				ingestclient.WithRetryNotify(func(n ingestclient.RetryNotice) { notices = append(notices, n) }))...)
			res, err := c.Send(context.Background(), events(2))
			if err != nil {
				t.Fatal(err)
			}
			reqs := gw.Requests()
			if len(reqs) != 2 || reqs[1].Status != http.StatusAccepted || res.Count(ingestclient.StatusAccepted) != 2 {
				t.Fatalf("requests %+v, result %+v", reqs, res)
			}
			// The backoff alone would have waited at most 30 ms.
			if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
				t.Errorf("retried %s after the %d, want at least the 1 s of Retry-After", gap, status)
			}
			if len(notices) != 1 || notices[0].Wait != time.Second || !strings.Contains(notices[0].Err.Error(), fmt.Sprint(status)) {
				t.Errorf("notices %+v, want one of a %d and a 1 s wait", notices, status)
			}
		})
	}
}

func TestRetryAfterHTTPDateIsHonoured(t *testing.T) {
	t.Parallel()
	gw := gatewaytest.Start(t)
	// An HTTP date has whole seconds: the retry must come no earlier than that second.
	notBefore := time.Now().Add(2 * time.Second).Truncate(time.Second)
	gw.FailNext(gatewaytest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: notBefore.UTC().Format(http.TimeFormat)})
	if _, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), events(1)); err != nil {
		t.Fatal(err)
	}
	reqs := gw.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[1].At.Before(notBefore) {
		t.Errorf("retried at %s, before the Retry-After date %s", reqs[1].At.Format(time.StampMilli), notBefore.Format(time.StampMilli))
	}
}

func TestNetworkErrorsAnd5xxAreRetriedWithBackoff(t *testing.T) {
	gw := gatewaytest.Start(t)
	gw.FailNext(gatewaytest.Fault{Status: 0}, gatewaytest.Fault{Status: http.StatusBadGateway}, gatewaytest.Fault{Status: http.StatusInternalServerError})
	res, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), events(4))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 4 || res.Count(ingestclient.StatusAccepted) != 4 || len(gw.Accepted()) != 4 {
		t.Fatalf("requests %d, accepted %d (gateway %d), want 4, 4, 4", res.Requests, res.Count(ingestclient.StatusAccepted), len(gw.Accepted()))
	}
}

func TestInvalidEventsAreRejectedAndTheRestResent(t *testing.T) {
	gw := gatewaytest.Start(t)
	evs := events(5)
	evs[1].Batting.AtBats = nil // required
	evs[3].Game.Date = "2024-02-30"
	evs[3].Player.Name = ""
	res, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	reqs := gw.Requests()
	if len(reqs) != 2 || reqs[0].Status != http.StatusUnprocessableEntity || reqs[1].Status != http.StatusAccepted {
		t.Fatalf("requests: %+v", reqs)
	}
	wantResent := []string{evs[0].GetEventId(), evs[2].GetEventId(), evs[4].GetEventId()}
	if got := ids(reqs[1].Events); strings.Join(got, ",") != strings.Join(wantResent, ",") {
		t.Errorf("resent %v, want the valid %v", got, wantResent)
	}
	if res.Count(ingestclient.StatusAccepted) != 3 || res.Count(ingestclient.StatusRejected) != 2 {
		t.Fatalf("accepted %d, rejected %d", res.Count(ingestclient.StatusAccepted), res.Count(ingestclient.StatusRejected))
	}
	if r := res.Events[1]; r.Status != ingestclient.StatusRejected || len(r.Violations) != 1 ||
		r.Violations[0].Field != "batting.atBats" || r.Violations[0].Reason != "required" || r.Violations[0].Detail == "" ||
		r.EventID != evs[1].GetEventId() {
		t.Errorf("event 1: %+v", r)
	}
	if r := res.Events[3]; r.Status != ingestclient.StatusRejected || len(r.Violations) != 2 {
		t.Errorf("event 3: %+v, want both violations", r)
	}
	if r := res.Events[4]; r.Status != ingestclient.StatusAccepted || r.ShardID == "" {
		t.Errorf("event 4: %+v, want accepted with its shard (mapped back from position 2 of the resend)", r)
	}
}

func TestEveryEventInvalidSendsNothingMore(t *testing.T) {
	gw := gatewaytest.Start(t)
	evs := events(2)
	evs[0].Version, evs[1].Version = -1, -2
	res, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(gw.Requests()) != 1 || res.Count(ingestclient.StatusRejected) != 2 {
		t.Fatalf("%d requests, %d rejected; want 1 and 2", len(gw.Requests()), res.Count(ingestclient.StatusRejected))
	}
}

func TestUnavailableForeverFailsAfterTheBudget(t *testing.T) {
	gw := gatewaytest.Start(t)
	faults := make([]gatewaytest.Fault, 1000)
	for i := range faults {
		faults[i] = gatewaytest.Fault{Status: http.StatusServiceUnavailable, Detail: "stream down"}
	}
	gw.FailNext(faults...)
	c := ingestclient.New(gw.URL, ingestclient.WithBackoff(5*time.Millisecond, 20*time.Millisecond), ingestclient.WithRetryBudget(300*time.Millisecond))
	start := time.Now()
	res, err := c.Send(context.Background(), events(2))
	if !errors.Is(err, ingestclient.ErrRetryBudgetExhausted) {
		t.Fatalf("err = %v, want the retry budget exhausted", err)
	}
	var pe *ingestclient.ProblemError
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "stream down") {
		t.Errorf("err = %v, want the last 503 and its detail in it", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("gave up after %s, want about the 300 ms budget", elapsed)
	}
	if n := len(gw.Requests()); n < 3 || res.Requests != n {
		t.Errorf("%d requests (result says %d), want several within the budget", n, res.Requests)
	}
	if res.Count(ingestclient.StatusUnknown) != 2 {
		t.Errorf("result %+v, want both events unknown", res)
	}
}

func TestRetryAfterBeyondTheBudgetGivesUpAtOnce(t *testing.T) {
	gw := gatewaytest.Start(t)
	gw.FailNext(gatewaytest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "30"})
	start := time.Now()
	_, err := ingestclient.New(gw.URL, ingestclient.WithRetryBudget(time.Second)).Send(context.Background(), events(1))
	if !errors.Is(err, ingestclient.ErrRetryBudgetExhausted) || time.Since(start) > 10*time.Second || len(gw.Requests()) != 1 {
		t.Fatalf("err = %v after %s and %d requests; want an exhausted budget at once", err, time.Since(start), len(gw.Requests()))
	}
}

func TestPermanentAnswersAreNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			gw := gatewaytest.Start(t)
			gw.FailNext(gatewaytest.Fault{Status: status, Detail: "split it into batches of at most 500"})
			_, err := ingestclient.New(gw.URL, fastRetries()...).Send(context.Background(), events(1))
			var pe *ingestclient.ProblemError
			if !errors.As(err, &pe) || pe.StatusCode != status || errors.Is(err, ingestclient.ErrRetryBudgetExhausted) {
				t.Fatalf("err = %v, want a permanent *ProblemError %d", err, status)
			}
			if !strings.Contains(err.Error(), "split it into batches of at most 500") || !strings.Contains(err.Error(), fmt.Sprint(status)) {
				t.Errorf("message %q lacks the status or the problem detail", err)
			}
			if n := len(gw.Requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

// A 503 stream-unavailable lists what the stream acknowledged: only the rest is resent, under
// the ids the gateway assigned, so nothing is duplicated.
func TestPartialAcknowledgementResendsOnlyTheRestWithAssignedIDs(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		mu.Lock()
		bodies = append(bodies, sb.String())
		n := len(bodies)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/problem+json")
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"type": "https://boxscore.dev/problems/stream-unavailable", "title": "Stream Unavailable", "status": 503,
				"detail":          "not every event acknowledged",
				"acknowledged":    []map[string]any{{"index": 0, "eventId": "gw-a", "shardId": "shardId-000000000000", "sequenceNumber": "1"}},
				"notAcknowledged": []map[string]any{{"index": 1, "eventId": "gw-b", "errorCode": "ProvisionedThroughputExceededException"}},
			})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"accepted": 1,
			"results": []map[string]any{{"index": 0, "eventId": "gw-b", "shardId": "shardId-000000000001", "sequenceNumber": "2"}}})
	}))
	defer srv.Close()

	evs := events(2)
	evs[0].EventId, evs[1].EventId = "", ""
	res, err := ingestclient.New(srv.URL, fastRetries()...).Send(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || strings.Count(strings.TrimSpace(bodies[1]), "\n") != 0 || !strings.Contains(bodies[1], `"eventId":"gw-b"`) {
		t.Fatalf("second request %q, want only event 1 under the id the gateway gave it", bodies[len(bodies)-1])
	}
	if evs[1].GetEventId() != "" {
		t.Error("the caller's event was modified")
	}
	if res.Events[0].EventID != "gw-a" || res.Events[0].Status != ingestclient.StatusAccepted ||
		res.Events[1].EventID != "gw-b" || res.Events[1].Status != ingestclient.StatusAccepted || res.Events[1].SequenceNumber != "2" {
		t.Fatalf("results %+v", res.Events)
	}
}

func TestCancelledContextStopsTheWait(t *testing.T) {
	gw := gatewaytest.Start(t)
	gw.FailNext(gatewaytest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "20"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ingestclient.New(gw.URL, ingestclient.WithRetryBudget(time.Minute)).Send(ctx, events(1))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %s, want the context's deadline promptly", err, time.Since(start))
	}
}

func TestUnreachableGatewayFailsAfterTheBudget(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	res, err := ingestclient.New(url, ingestclient.WithBackoff(5*time.Millisecond, 20*time.Millisecond),
		ingestclient.WithRetryBudget(200*time.Millisecond)).Send(context.Background(), events(1))
	if !errors.Is(err, ingestclient.ErrRetryBudgetExhausted) || !strings.Contains(err.Error(), "connect") || res.Requests < 2 {
		t.Fatalf("err = %v after %d requests, want an exhausted budget naming the connection failure", err, res.Requests)
	}
}

// The key goes in every request, retries included, and a quota's 429 is waited out as the
// gateway asks.
func TestAPIKeyIsSentOnEveryRequestAndA429IsWaitedOut(t *testing.T) {
	t.Parallel()
	gw := gatewaytest.Start(t)
	gw.RequireKeys(map[string][]string{"bsk_good": {"ingest"}})
	gw.FailNext(gatewaytest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1", Type: "quota-exceeded"})
	res, err := ingestclient.New(gw.URL, append(fastRetries(), ingestclient.WithAPIKey("bsk_good"))...).Send(context.Background(), events(3))
	if err != nil {
		t.Fatal(err)
	}
	reqs := gw.Requests()
	if len(reqs) != 2 || res.Count(ingestclient.StatusAccepted) != 3 {
		t.Fatalf("%d requests, %d accepted; want 2 and 3", len(reqs), res.Count(ingestclient.StatusAccepted))
	}
	for i, r := range reqs {
		if r.Authorization != "Bearer bsk_good" {
			t.Errorf("request %d sent Authorization %q", i, r.Authorization)
		}
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried %s after the 429, want at least the 1 s of Retry-After", gap)
	}
}

// 401 and 403 are permanent: one request, an error naming the status, the gateway's detail
// and what to check, and never the key.
func TestRefusedCredentialsAreNotRetriedAndNeverEchoTheKey(t *testing.T) {
	t.Parallel()
	retraction := event(1)
	retraction.Batting = nil
	retraction.Retraction = &statsv1.Retraction{Reason: "reported twice"}
	for _, tc := range []struct {
		name   string
		key    string
		events []*statsv1.StatEvent
		status int
		hint   string
	}{
		{"no key", "", events(1), http.StatusUnauthorized, "no API key was sent"},
		{"wrong key", "bsk_wrong-secret-value", events(1), http.StatusUnauthorized, "was not accepted"},
		{"missing scope", "bsk_ingest-only", []*statsv1.StatEvent{retraction}, http.StatusForbidden, "retract for retractions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw := gatewaytest.Start(t)
			gw.RequireKeys(map[string][]string{"bsk_ingest-only": {"ingest"}})
			res, err := ingestclient.New(gw.URL, append(fastRetries(), ingestclient.WithAPIKey(tc.key))...).Send(context.Background(), tc.events)
			var pe *ingestclient.ProblemError
			if !errors.As(err, &pe) || pe.StatusCode != tc.status {
				t.Fatalf("err = %v, want a *ProblemError %d", err, tc.status)
			}
			if n := len(gw.Requests()); n != 1 {
				t.Errorf("%d requests, want 1 (not retried)", n)
			}
			if res.Count(ingestclient.StatusUnknown) != len(tc.events) {
				t.Errorf("result %+v, want every event unsettled", res.Events)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprint(tc.status)) || !strings.Contains(msg, tc.hint) || !strings.Contains(msg, pe.Problem.Detail) || pe.Problem.Detail == "" {
				t.Errorf("message %q lacks the status, the problem detail or the hint %q", msg, tc.hint)
			}
			if tc.key != "" && strings.Contains(msg, strings.TrimPrefix(tc.key, "bsk_")) {
				t.Errorf("message %q repeats the key", msg)
			}
		})
	}
}
