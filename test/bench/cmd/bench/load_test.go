package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// TestPutStatsRequestMatchesJSON holds the requests the gRPC producers send, built directly
// and marshalled before the phase, to the events the JSON of the same lines makes: the
// same events, ids and counts as the HTTP producers' bodies.
func TestPutStatsRequestMatchesJSON(t *testing.T) {
	var lines []stack.Line
	for phaseNo, phase := range []string{"drain", "e2e", "fresh1"} {
		w := workload{phase: phase, players: 750, seed: 1, phaseNo: uint64(phaseNo + 1)}
		lines = append(lines, w.lines(0, 2000)...)
	}
	// What RandomLine never makes: no id, away, a doubleheader's second game, every count.
	odd := lines[0]
	odd.EventID, odd.Home, odd.GameNumber = "", false, 2
	odd.IBB, odd.SH, odd.CS, odd.GIDP, odd.D3 = 1, 1, 1, 1, 1
	lines = append(lines, odd, stack.ImpossibleLine("x-1", 700001, "g1", "2024-04-01"))
	for _, l := range lines {
		if got, want := statEvent(l), stack.StatEvent(t, l); !proto.Equal(got, want) {
			t.Fatalf("line %+v:\n built %v\n  json %v", l, got, want)
		}
	}

	w := workload{phase: "drain", players: 750, seed: 1, phaseNo: 1}
	reqs, err := render(w, 1050, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 11 || reqs[10].events != 50 {
		t.Fatalf("%d requests, the last of %d events", len(reqs), reqs[len(reqs)-1].events)
	}
	for k, r := range reqs {
		batch := w.lines(k*100, r.events)
		body, _, err := stack.Body(batch, stack.PostOptions{NDJSON: true})
		if err != nil {
			t.Fatal(err)
		}
		if string(r.body) != string(body) {
			t.Fatalf("request %d: the NDJSON body is not stack.Body's", k)
		}
		got := &ingestv1.PutStatsRequest{}
		if err := proto.Unmarshal(r.msg, got); err != nil {
			t.Fatal(err)
		}
		want := &ingestv1.PutStatsRequest{}
		for _, l := range batch {
			want.Events = append(want.Events, stack.StatEvent(t, l))
		}
		if !proto.Equal(got, want) {
			t.Fatalf("request %d: the marshalled PutStatsRequest differs from the JSON's events", k)
		}
		// What the codec sends is those bytes.
		data, err := rawCodec{}.Marshal(&marshalled{data: r.msg})
		if err != nil || string(data.Materialize()) != string(r.msg) {
			t.Fatalf("request %d: the codec sent other bytes (%v)", k, err)
		}
	}
}

// TestRetriesCounted: a request the gateway refuses is sent again as before, and counted
// by the answer that refused it.
func TestRetriesCounted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"accepted":3}`))
	}))
	defer srv.Close()
	p := &producers{retries: &retries{}}
	p.senders = []sender{&httpSender{url: srv.URL, key: "k", client: srv.Client(), retries: p.retries}}
	reqs, err := render(workload{phase: "drain", players: 750, seed: 1, phaseNo: 1}, 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.flood(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 3 || calls.Load() != 2 || len(res.Retries) != 1 || res.Retries["http 503"] != 1 {
		t.Fatalf("%d events, %d calls, retries %v; want 3, 2 and one http 503", res.Events, calls.Load(), res.Retries)
	}
	if got := retried(res.Retries); got != "; 1 requests retried (http 503 x1)" {
		t.Errorf("printed %q", got)
	}
}
