package componenttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/pkg/testutil/throttleproxy"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// These tests run the gateway against kinesalite behind a throttleproxy.Proxy, which
// throttles PutRecords on the wire the way Kinesis does.
//
// The proxy never forwards a throttled call or a failed entry, and the publisher's attempt
// timeout is set to its whole retry budget, so no call is ever cut off and resent: nothing
// is ambiguous, and every event is at most once in the stream (streamtest.ByEventID fails
// the test on a duplicate). Only a call cut off by the end of the budget can have stored
// events the answer calls not acknowledged; it is never resent.

const problemBase = "https://boxscore.dev/problems/"

// newThrottledGateway creates a 2-shard stream and a gateway writing to it through a
// throttling proxy.
func newThrottledGateway(t *testing.T, cfg publish.Config, throttle throttleproxy.Config) (*gateway, *throttleproxy.Proxy) {
	t.Helper()
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	proxy := throttleproxy.Start(t, kin.Endpoint, throttle)
	g := startGateway(t, proxy.Endpoint, name, cfg)
	g.kinesis = kin
	return g, proxy
}

func TestFullyThrottledStreamAnswers503(t *testing.T) {
	cfg := publishConfig()
	// A backoff that reaches more than a second within the budget, so that the derived
	// Retry-After is not merely the one-second floor.
	cfg.RetryBudget, cfg.AttemptTimeout = 1500*time.Millisecond, 1500*time.Millisecond
	cfg.InitialBackoff, cfg.MaxBackoff = 100*time.Millisecond, 3*time.Second
	g, proxy := newThrottledGateway(t, cfg, throttleproxy.ThrottleAll)

	events := testevents.Batch(10, false)
	for i := 0; i < len(events); i += 2 {
		events[i].EventId = "throttled-" + strconv.Itoa(i)
	}
	r := g.post(t, "application/json", testevents.JSONArray(t, events))
	if r.status != http.StatusServiceUnavailable || r.problem.Type != problemBase+"stream-unavailable" {
		t.Fatalf("status %d, problem %+v; want 503 stream-unavailable", r.status, r.problem)
	}
	p := r.problem
	if len(p.Acknowledged) != 0 || len(p.NotAcknowledged) != len(events) {
		t.Fatalf("acknowledged %+v, not acknowledged %+v; want none and all %d", p.Acknowledged, p.NotAcknowledged, len(events))
	}
	for i, na := range p.NotAcknowledged {
		// The last error seen: the throttling, or the end of the budget cutting the last
		// attempt short (on a loaded machine an attempt can outlast what is left of it).
		if na.Index != i || na.EventID == "" || (na.ErrorCode != "ProvisionedThroughputExceededException" && na.ErrorCode != "Timeout") {
			t.Errorf("not acknowledged %d = %+v, want its index, id and the throttling error (or the budget's timeout)", i, na)
		}
		if i%2 == 0 && na.EventID != events[i].GetEventId() {
			t.Errorf("event %d: id %q, want the client's %q", i, na.EventID, events[i].GetEventId())
		}
		if i%2 == 1 && !uuidV7.MatchString(na.EventID) {
			t.Errorf("event %d: id %q, want the UUIDv7 the gateway assigned, for the client's retry", i, na.EventID)
		}
	}

	// Every attempt was a whole call of all the events (a throttled call stores nothing,
	// so all are resent), and Retry-After is the wait the backoff would have taken next.
	calls := proxy.Calls()
	if len(calls) < 2 {
		t.Fatalf("%d PutRecords calls within a %s budget, want retries", len(calls), cfg.RetryBudget)
	}
	for i, c := range calls {
		if !c.Throttled || len(c.EventIDs) != len(events) {
			t.Errorf("call %d = %+v, want a throttled call of all %d events", i, c, len(events))
		}
	}
	want := int(math.Ceil(cfg.UnavailableRetryAfter(len(calls)).Seconds()))
	if got := r.header.Get("Retry-After"); got != strconv.Itoa(want) || p.RetryAfterSeconds != want {
		t.Errorf("Retry-After %q (body %d) after %d attempts, want %d", got, p.RetryAfterSeconds, len(calls), want)
	}

	// Nothing was acknowledged, and nothing is in the stream.
	if n := len(g.readStream(t)); n != 0 {
		t.Errorf("the stream holds %d events, want none", n)
	}
}

func TestPartlyThrottledStreamResendsOnlyFailedEntries(t *testing.T) {
	cfg := publishConfig()
	cfg.RetryBudget, cfg.AttemptTimeout = 5*time.Second, 5*time.Second
	g, proxy := newThrottledGateway(t, cfg, throttleproxy.Config{FailEntryShare: 0.5})

	events := testevents.Batch(100, false)
	for i := 0; i < len(events); i += 2 {
		events[i].EventId = "partly-" + strconv.Itoa(i)
	}
	// Every event once in the stream where the 202 says, with its envelope and key.
	results := checkAccepted(t, g, g.post(t, "application/json", testevents.JSONArray(t, events)), events)

	calls := proxy.Calls()
	if len(calls) < 2 {
		t.Fatalf("%d PutRecords calls with half the entries failing, want resends", len(calls))
	}
	ids := make([]string, len(results))
	for i, res := range results {
		ids[i] = res.EventID
	}
	if !slices.Equal(calls[0].EventIDs, ids) || len(calls[0].Failed) != len(events)/2 {
		t.Errorf("first call carried %d events of which %d failed, want all %d in order, half failing",
			len(calls[0].EventIDs), len(calls[0].Failed), len(events))
	}
	for i := 1; i < len(calls); i++ {
		if !slices.Equal(calls[i].EventIDs, calls[i-1].Failed) {
			t.Errorf("call %d resent %v, want exactly the entries call %d failed: %v", i, calls[i].EventIDs, i-1, calls[i-1].Failed)
		}
	}
	if last := calls[len(calls)-1]; len(last.Failed) != 0 {
		t.Errorf("the last call failed %v, want none", last.Failed)
	}
}

func TestThrottledStreamNeverAcknowledgesUnstoredEvents(t *testing.T) {
	cfg := publishConfig()
	cfg.RetryBudget, cfg.AttemptTimeout = 600*time.Millisecond, 600*time.Millisecond
	cfg.InitialBackoff, cfg.MaxBackoff = 20*time.Millisecond, 50*time.Millisecond
	// A third of the calls throttled whole, half the entries of the others failing: some
	// batches get through in time, others end with a 503 listing part of them.
	g, _ := newThrottledGateway(t, cfg, throttleproxy.Config{ThrottleCallShare: 1.0 / 3, FailEntryShare: 0.5})

	const requests, perRequest = 8, 8
	batches := make([][]*statsv1.StatEvent, requests)
	answers := make([]response, requests)
	var wg sync.WaitGroup
	for b := range batches {
		batches[b] = make([]*statsv1.StatEvent, perRequest)
		for i := range batches[b] {
			batches[b][i] = testevents.Valid(int64(200000+b*perRequest+i), i)
			batches[b][i].EventId = fmt.Sprintf("batch-%d-event-%d", b, i)
		}
		body := testevents.JSONArray(t, batches[b])
		wg.Go(func() { answers[b] = postFromGoroutine(t, g.httpURL, "application/json", []byte(body), false) })
	}
	wg.Wait()

	inStream := g.readStream(t) // fails on a duplicate: none is possible here
	acknowledged := map[string]bool{}
	var accepted, unavailable int
	checkStored := func(b int, res ingestapi.Result) {
		rec, ok := inStream[res.EventID]
		if !ok || rec.ShardID != res.ShardID || rec.SequenceNumber != res.SequenceNumber {
			t.Errorf("batch %d: acknowledged %+v, the stream has %+v (present: %v)", b, res, rec, ok)
		}
		if res.EventID != batches[b][res.Index].GetEventId() {
			t.Errorf("batch %d: result %+v names another event than index %d", b, res, res.Index)
		}
		acknowledged[res.EventID] = true
	}
	for b, a := range answers {
		switch a.status {
		case http.StatusAccepted:
			accepted++
			var body ingestapi.Accepted
			if err := json.Unmarshal(a.body, &body); err != nil || len(body.Results) != perRequest {
				t.Fatalf("batch %d: 202 body %s (%v), want %d results", b, a.body, err, perRequest)
			}
			for _, res := range body.Results {
				checkStored(b, res)
			}
		case http.StatusServiceUnavailable:
			unavailable++
			if a.problem.Type != problemBase+"stream-unavailable" || a.header.Get("Retry-After") == "" {
				t.Errorf("batch %d: 503 %+v with Retry-After %q, want stream-unavailable with Retry-After", b, a.problem, a.header.Get("Retry-After"))
			}
			// The 503 lists every event exactly once, as acknowledged or not.
			seen := make([]int, perRequest)
			for _, res := range a.problem.Acknowledged {
				checkStored(b, res)
				seen[res.Index]++
			}
			for _, na := range a.problem.NotAcknowledged {
				if na.EventID != batches[b][na.Index].GetEventId() {
					t.Errorf("batch %d: not acknowledged %+v names another event than index %d", b, na, na.Index)
				}
				seen[na.Index]++
			}
			for i, n := range seen {
				if n != 1 {
					t.Errorf("batch %d: event %d is listed %d times in the 503, want once", b, i, n)
				}
			}
		default:
			t.Errorf("batch %d: status %d: %s", b, a.status, a.body)
		}
	}
	// An event in the stream that no answer acknowledged was in a call cut off by the end of
	// a budget: allowed, as the 503 only promises what it lists as acknowledged.
	for id := range inStream {
		if !acknowledged[id] && !strings.HasPrefix(id, "batch-") {
			t.Errorf("event %s in the stream belongs to no request", id)
		}
	}
	t.Logf("%d accepted, %d unavailable, %d of %d events acknowledged, %d in the stream",
		accepted, unavailable, len(acknowledged), requests*perRequest, len(inStream))
}

// postFromGoroutine posts body and reads the answer; it reports failures with t.Errorf, so
// it may run outside the test's goroutine. With expectContinue the request asks
// "Expect: 100-continue", so a refused body is never sent.
func postFromGoroutine(t *testing.T, url, contentType string, body []byte, expectContinue bool) response {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/stats", bytes.NewReader(body))
	if err != nil {
		t.Errorf("new request: %v", err)
		return response{}
	}
	req.Header.Set("Content-Type", contentType)
	client := http.DefaultClient
	if expectContinue {
		req.Header.Set("Expect", "100-continue")
		client = expectContinueClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("POST /v1/stats: %v", err)
		return response{}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("read response: %v", err)
		return response{}
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(data, &r.problem); err != nil {
			t.Errorf("problem body: %v\n%s", err, data)
		}
	}
	return r
}

var expectContinueClient = &http.Client{Transport: &http.Transport{
	ExpectContinueTimeout: 10 * time.Second, // wait for the server's verdict, however long
	MaxIdleConnsPerHost:   64,
}}

// bigBatch returns a body of MaxBatchEvents valid events with strings as long as allowed,
// padded with blank space to size bytes.
func bigBatch(t *testing.T, size int) []byte {
	t.Helper()
	events := make([]*statsv1.StatEvent, publish.MaxBatchEvents)
	for i := range events {
		ev := testevents.Valid(int64(300000+i), i)
		ev.EventId = fmt.Sprintf("big-%d-%s", i, strings.Repeat("x", statevent.MaxEventIDLength-10))
		ev.Player.Name = strings.Repeat("N", statevent.MaxNameLength)
		ev.Source = strings.Repeat("s", statevent.MaxSourceLength)
		events[i] = ev
	}
	body := testevents.JSONArray(t, events)
	if len(body) > size {
		t.Fatalf("the events take %d bytes, more than %d", len(body), size)
	}
	return []byte(body[:len(body)-1] + strings.Repeat(" ", size-len(body)) + "]")
}

func TestThrottledGatewayMemoryStaysBounded(t *testing.T) {
	cfg := publishConfig()
	cfg.RetryBudget, cfg.AttemptTimeout = time.Second, time.Second
	cfg.MaxInFlightBatches = 16
	cfg.MaxInFlightBytes = 16 << 20
	g, _ := newThrottledGateway(t, cfg, throttleproxy.ThrottleAll)

	const clients, requestsPerClient, bodySize = 64, 2, 4 << 20
	body := bigBatch(t, bodySize) // one body shared by every request: the client side holds 4 MiB

	// Heap in use of this process (gateway, proxy and clients), sampled while the requests
	// run. The bound derives from the in-flight byte limit: each admitted byte is held a
	// few times over (body buffers, decoded events, records, the PutRecords request), plus
	// a fixed allowance for the test process itself and the garbage collector's slack.
	bound := uint64(cfg.MaxInFlightBytes)*4 + 64<<20
	heapPeak := sampleHeapInUse()

	type outcome struct {
		status  int
		problem string
		retry   string
	}
	outcomes := make(chan outcome, clients*requestsPerClient)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range requestsPerClient {
				r := postFromGoroutine(t, g.httpURL, "application/json", body, true)
				outcomes <- outcome{status: r.status, problem: r.problem.Type, retry: r.header.Get("Retry-After")}
			}
		})
	}
	wg.Wait()
	peak := heapPeak()
	close(outcomes)

	var busy, unavailable int
	for o := range outcomes {
		switch {
		case o.status == http.StatusServiceUnavailable && o.problem == problemBase+"busy":
			// Refused at admission, before the body is read: the problem type says so (no
			// timing is asserted; a loaded machine may be slow to answer either way).
			busy++
			if n, err := strconv.Atoi(o.retry); err != nil || n < 1 || n > int(cfg.RetryBudget.Seconds()) {
				t.Errorf("busy Retry-After %q, want 1 to %d seconds (when in-flight batches end)", o.retry, int(cfg.RetryBudget.Seconds()))
			}
		case o.status == http.StatusServiceUnavailable && o.problem == problemBase+"stream-unavailable":
			unavailable++
			if o.retry == "" {
				t.Error("a stream-unavailable answer without Retry-After")
			}
		default:
			t.Errorf("status %d problem %q: want 503 busy or stream-unavailable from a throttled stream", o.status, o.problem)
		}
	}
	if busy == 0 || unavailable == 0 {
		t.Errorf("%d busy and %d stream-unavailable answers, want both: the in-flight limits were never reached or nothing was admitted", busy, unavailable)
	}
	// At most MaxInFlightBytes/bodySize requests are admitted at once, each for a budget.
	t.Logf("%d busy, %d stream-unavailable; peak heap in use %d MiB, bound %d MiB", busy, unavailable, peak>>20, bound>>20)
	if peak > bound {
		t.Errorf("heap in use peaked at %d MiB, over the bound of %d MiB (4 × in-flight bytes + 64 MiB)", peak>>20, bound>>20)
	}
	if n := len(g.readStream(t)); n != 0 {
		t.Errorf("the stream holds %d events, want none from a throttled stream", n)
	}
}

func TestBusyRetryAfterIsWhenInFlightBatchesEnd(t *testing.T) {
	cfg := publishConfig()
	cfg.RetryBudget, cfg.AttemptTimeout = 2*time.Second, 2*time.Second
	cfg.MaxInFlightBatches = 1
	g, proxy := newThrottledGateway(t, cfg, throttleproxy.ThrottleAll)

	held := make(chan response, 1)
	heldBody := []byte(testevents.JSONArray(t, testevents.Batch(1, true)))
	go func() { held <- postFromGoroutine(t, g.httpURL, "application/json", heldBody, false) }()
	// Once the held request is publishing, it holds the only slot for its budget.
	waitFor(t, func() bool { return len(proxy.Calls()) > 0 })
	r := g.post(t, "application/json", testevents.JSONArray(t, testevents.Batch(1, false)))
	if r.problem.Type != problemBase+"busy" {
		t.Fatalf("status %d, problem %+v; want 503 busy", r.status, r.problem)
	}
	if r.status != http.StatusServiceUnavailable || (r.header.Get("Retry-After") != "1" && r.header.Get("Retry-After") != "2") {
		t.Fatalf("status %d, Retry-After %q; want 503 busy with the rest of the 2s budget, 1 or 2", r.status, r.header.Get("Retry-After"))
	}
	// A client honouring Retry-After finds the slot free: the held batch ended with its
	// budget. (It is answered stream-unavailable, the stream being throttled, not busy.)
	wait, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(wait) * time.Second)
	if h := <-held; h.problem.Type != problemBase+"stream-unavailable" {
		t.Errorf("held request: %d %+v, want 503 stream-unavailable", h.status, h.problem)
	}
	r = g.post(t, "application/json", testevents.JSONArray(t, testevents.Batch(1, false)))
	if r.problem.Type != problemBase+"stream-unavailable" {
		t.Errorf("after Retry-After: %d %+v, want the request admitted (and throttled)", r.status, r.problem)
	}
}
