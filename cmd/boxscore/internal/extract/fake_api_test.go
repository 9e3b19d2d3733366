package extract

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Player ids the fake Stats API knows, each with a fixture in testdata (made-up values in
// the API's exact shape).
const (
	playerNormal       int64 = 660271 // five regular-season games and a spring game to skip
	playerDoubleheader int64 = 605141 // a doubleheader, and a lone game 2 of another
	playerPostponed    int64 = 518692 // a postponed game made up in a doubleheader
	playerNoStats      int64 = 111111 // "stats": []
	playerNoSplits     int64 = 222222 // "stats": [{... "splits": []}]
	playerUnknownTeam  int64 = 592450 // an opponent id that is no MLB club
)

var fixtureOf = map[int64]string{
	playerNormal:       "gamelog-660271-2024.json",
	playerDoubleheader: "gamelog-605141-2024.json",
	playerPostponed:    "gamelog-518692-2024.json",
	playerNoStats:      "gamelog-no-stats.json",
	playerNoSplits:     "gamelog-no-splits.json",
	playerUnknownTeam:  "gamelog-unknown-team.json",
}

// fakeStatsAPI serves the fixtures of season 2024 at the Stats API's path. A test may put
// answers in front of the fixture for a player (an error status, a broken body, ...).
type fakeStatsAPI struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	before   map[int64][]http.HandlerFunc // consumed one per request, then the fixture
	// League endpoints (fixtures in testdata/league): clock is the fake's "now", a
	// timecode; every answer is the state of the source at that time.
	clock       string
	beforePath  map[string][]http.HandlerFunc // by URL path, consumed one per request
	notModified int                           // 304s answered to conditional requests
}

func newFakeStatsAPI(t *testing.T) *fakeStatsAPI {
	t.Helper()
	f := &fakeStatsAPI{before: map[int64][]http.HandlerFunc{}, beforePath: map[string][]http.HandlerFunc{}, clock: "20240412_030000"}
	mux := http.NewServeMux()
	f.handleLeague(mux)
	mux.HandleFunc("GET /api/v1/people/{id}/stats", func(w http.ResponseWriter, r *http.Request) {
		var id int64
		if _, err := fmt.Sscan(r.PathValue("id"), &id); err != nil {
			http.Error(w, `{"message":"bad id"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(r.Context()))
		var next http.HandlerFunc
		if queue := f.before[id]; len(queue) > 0 {
			next, f.before[id] = queue[0], queue[1:]
		}
		f.mu.Unlock()
		if next != nil {
			next(w, r)
			return
		}
		name, ok := fixtureOf[id]
		if !ok || r.URL.Query().Get("season") != "2024" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"messageNumber":10,"message":"Object not found"}`)
			return
		}
		body, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = w.Write(body)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// answerFirst queues answers for the next requests about player id.
func (f *fakeStatsAPI) answerFirst(id int64, answers ...http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before[id] = append(f.before[id], answers...)
}

func (f *fakeStatsAPI) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeStatsAPI) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func status(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

// dropConnection closes the connection without an answer, as a network failure does.
func dropConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot drop the connection: "+err.Error(), http.StatusTeapot)
		return
	}
	_ = conn.Close()
}

// fastClient is a client whose own back-off is a millisecond, so only a server's
// Retry-After makes a test wait.
func fastClient(t *testing.T, baseURL string, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) })}, opts...)
	c, err := NewClient(baseURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustContain(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%q does not contain %q", s, p)
		}
	}
}
