package main

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// firstPlayer is the first player id of the bench's league; ids are consecutive, which
// Kinesis's MD5 of the partition key spreads evenly over the shards.
const firstPlayer = 700000

// seasonStart is the first game date; games are dealt one date after another.
var seasonStart = time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC)

// workload is a deterministic set of events: event i is game i/players of player
// firstPlayer+i%players, its batting line drawn from a generator seeded by (seed, phase,
// i), so every run sends the same bytes and every event is its own (player, game): one
// event, one row.
type workload struct {
	phase   string // the event-id prefix, also the game ids' prefix: phases never share a key
	players int
	seed    uint64
	phaseNo uint64
}

func (w workload) line(i int) stack.Line {
	game := i / w.players
	player := int64(firstPlayer + i%w.players)
	rng := rand.New(rand.NewPCG(w.seed, w.phaseNo<<40|uint64(i)))
	date := seasonStart.AddDate(0, 0, game%180).Format(time.DateOnly)
	return stack.RandomLine(rng, w.phase, player, fmt.Sprintf("%s%07d", w.phase, game), date, 1)
}

func (w workload) lines(from, n int) []stack.Line {
	out := make([]stack.Line, n)
	for k := range out {
		out[k] = w.line(from + k)
	}
	return out
}

// sender delivers one request's events, retrying what the gateway asks to be retried
// (429, 503, a broken connection) with the same event ids, as a producer does.
type sender interface {
	send(ctx context.Context, r *request) error
	protocol() string
}

// request is one request's events and, once rendered, their two forms: the NDJSON body
// an HTTP producer posts and the PutStatsRequest a gRPC producer sends, already
// marshalled. The flooding phases render all of theirs in both forms before they start
// (render), so that a request costs its sender only the sending: the load generator shares
// the machine's cores with the gateway and kinesalite, and should not measure its own
// rendering (the raw PutRecords ceiling sends ready bytes too). The paced phases render
// each request as it is sent, in its sender's form only.
type request struct {
	first  string // the first event's id, for errors
	events int
	lines  []stack.Line
	body   []byte // NDJSON, as stack.Body renders it; nil until rendered
	msg    []byte // the PutStatsRequest, protobuf; nil until rendered
}

func newRequest(w workload, from, n int) *request {
	lines := w.lines(from, n)
	return &request{first: lines[0].EventID, events: n, lines: lines}
}

// ndjson renders the HTTP body, once.
func (r *request) ndjson() ([]byte, error) {
	if r.body == nil {
		body, _, err := stack.Body(r.lines, stack.PostOptions{NDJSON: true})
		if err != nil {
			return nil, fmt.Errorf("render %d events from %s: %w", r.events, r.first, err)
		}
		r.body = body
	}
	return r.body, nil
}

// protobuf renders the PutStats request, once.
func (r *request) protobuf() ([]byte, error) {
	if r.msg == nil {
		msg, err := proto.Marshal(putStatsRequest(r.lines))
		if err != nil {
			return nil, fmt.Errorf("marshal %d events from %s: %w", r.events, r.first, err)
		}
		r.msg = msg
	}
	return r.msg, nil
}

// render renders events [0, n) of w as requests of batch events, on every core (before a
// timed phase: nothing else of the bench runs then).
func render(w workload, n, batch int) ([]*request, error) {
	reqs := make([]*request, (n+batch-1)/batch)
	errs := make([]error, len(reqs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(reqs) {
					return
				}
				from := k * batch
				r := newRequest(w, from, min(batch, n-from))
				_, errBody := r.ndjson()
				_, errMsg := r.protobuf()
				reqs[k], errs[k] = r, errors.Join(errBody, errMsg)
				r.lines = nil // rendered: only the bytes are kept
			}
		})
	}
	wg.Wait()
	return reqs, errors.Join(errs...)
}

// putStatsRequest is the PutStats request of lines: each event the one the HTTP API makes
// of the line's JSON (protojson's reading of stack.Line.Event), built directly
// (TestPutStatsRequestMatchesJSON).
func putStatsRequest(lines []stack.Line) *ingestv1.PutStatsRequest {
	req := &ingestv1.PutStatsRequest{Events: make([]*statsv1.StatEvent, len(lines))}
	for i, l := range lines {
		req.Events[i] = statEvent(l)
	}
	return req
}

func statEvent(l stack.Line) *statsv1.StatEvent {
	homeAway := statsv1.HomeAway_HOME_AWAY_AWAY
	if l.Home {
		homeAway = statsv1.HomeAway_HOME_AWAY_HOME
	}
	n := func(v int) *int32 { return proto.Int32(int32(v)) } //nolint:gosec // counts of one game
	return &statsv1.StatEvent{
		EventId: l.EventID,
		Player:  &statsv1.Player{MlbId: l.PlayerID, Name: l.Name, Team: "LAD"},
		Game: &statsv1.Game{GameId: l.GameID, Date: l.Date, GameNumber: int32(l.GameNumber), //nolint:gosec // 0, 1 or 2
			Opponent: l.Opponent, HomeAway: homeAway},
		Version: l.Version,
		Source:  "stack-test",
		Batting: &statsv1.BattingLine{
			PlateAppearances: n(l.PA), AtBats: n(l.AB), Runs: n(l.R), Hits: n(l.H), Doubles: n(l.D2),
			Triples: n(l.D3), HomeRuns: n(l.HR), Rbi: n(l.RBI), BaseOnBalls: n(l.BB), IntentionalWalks: n(l.IBB),
			StrikeOuts: n(l.SO), HitByPitch: n(l.HBP), SacBunts: n(l.SH), SacFlies: n(l.SF), StolenBases: n(l.SB),
			CaughtStealing: n(l.CS), GroundIntoDoublePlay: n(l.GIDP), TotalBases: n(l.TotalBases()),
		},
	}
}

// retryWait is how long a sender waits before sending a request again when the gateway
// gave no Retry-After.
const retryWait = 200 * time.Millisecond

type httpSender struct {
	url     string
	key     string
	client  *http.Client
	retries *retries
}

func (h *httpSender) protocol() string { return "http" }

func (h *httpSender) send(ctx context.Context, r *request) error {
	body, err := r.ndjson()
	if err != nil {
		return err
	}
	for {
		a, err := h.post(ctx, body, "application/x-ndjson")
		var transport *stack.TransportError
		wait := retryWait
		switch {
		case errors.As(err, &transport):
		case err != nil:
			return fmt.Errorf("POST %d events from %s: %w", r.events, r.first, err)
		case a.Status == http.StatusAccepted:
			if a.Accepted != r.events {
				return fmt.Errorf("POST %d events from %s: 202 accepted %d", r.events, r.first, a.Accepted)
			}
			return nil
		case a.Status == http.StatusTooManyRequests || a.Status >= 500:
			if a.RetryAfter > 0 {
				wait = a.RetryAfter
			}
		default:
			return fmt.Errorf("POST %d events from %s: %d %.300s", r.events, r.first, a.Status, a.Body)
		}
		if ctx.Err() != nil {
			last := err
			if last == nil {
				last = fmt.Errorf("answer %d", a.Status)
			}
			return fmt.Errorf("POST %d events from %s: %w (last: %w)", r.events, r.first, ctx.Err(), last)
		}
		if err != nil {
			h.retries.add("http transport error")
		} else {
			h.retries.add("http " + strconv.Itoa(a.Status))
		}
		time.Sleep(wait)
	}
}

// post sends one request with the producer's key; the answer as stack.Post reads it.
func (h *httpSender) post(ctx context.Context, body []byte, contentType string) (stack.Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/v1/stats", bytes.NewReader(body))
	if err != nil {
		return stack.Answer{}, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := h.client.Do(req)
	if err != nil {
		return stack.Answer{}, &stack.TransportError{Err: err}
	}
	defer resp.Body.Close()
	a := stack.Answer{Status: resp.StatusCode}
	if a.Body, err = io.ReadAll(resp.Body); err != nil {
		return a, &stack.TransportError{Err: fmt.Errorf("read the %d answer: %w", resp.StatusCode, err)}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		a.RetryAfter = time.Duration(s) * time.Second
	}
	if a.Status == http.StatusAccepted {
		var got struct {
			Accepted int `json:"accepted"`
		}
		if err := json.Unmarshal(a.Body, &got); err != nil {
			return a, fmt.Errorf("202 body %.200q: %w", a.Body, err)
		}
		a.Accepted = got.Accepted
	}
	return a, nil
}

type grpcSender struct {
	key     string
	conn    *grpc.ClientConn
	retries *retries
}

func (g *grpcSender) protocol() string { return "grpc" }

func (g *grpcSender) send(ctx context.Context, r *request) error {
	data, err := r.protobuf()
	if err != nil {
		return err
	}
	msg := &marshalled{data: data}
	for {
		resp := &ingestv1.PutStatsResponse{}
		err := g.conn.Invoke(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.key),
			ingestv1.IngestService_PutStats_FullMethodName, msg, resp, grpc.ForceCodecV2(rawCodec{}))
		if err == nil {
			if len(resp.GetResults()) != r.events {
				return fmt.Errorf("PutStats %d events from %s: %d results", r.events, r.first, len(resp.GetResults()))
			}
			return nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		default:
			return fmt.Errorf("PutStats %d events from %s: %w", r.events, r.first, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("PutStats %d events from %s: %w (last: %w)", r.events, r.first, ctx.Err(), err)
		}
		g.retries.add("grpc " + status.Code(err).String())
		time.Sleep(retryWait)
	}
}

// marshalled is a request message already in its protobuf bytes.
type marshalled struct{ data []byte }

// rawCodec sends a marshalled message's bytes as they are, and is gRPC's protobuf codec
// for everything else (the answers). The server sees the content type of any protobuf
// request ("application/grpc").
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*marshalled); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.data)}, nil
	}
	return protoCodec().Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return protoCodec().Unmarshal(data, v) }

func (rawCodec) Name() string { return "proto" }

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// producers are the bench's concurrent clients of the gateway, half HTTP, half gRPC.
type producers struct {
	senders []sender
	conn    *grpc.ClientConn
	retries *retries
}

// retries counts the requests the producers sent again, by the answer that made them (a
// refused request costs its producer a wait: retryWait or the Retry-After).
type retries struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *retries) add(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[why]++
}

// take returns the counts so far and starts again from none.
func (r *retries) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n = nil
	return n
}

func newProducers(gatewayURL, grpcAddr string, keys []string, httpN, grpcN int) (*producers, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("gRPC client of %s: %w", grpcAddr, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = httpN
	client := &http.Client{Timeout: 60 * time.Second, Transport: transport}
	p := &producers{conn: conn, retries: &retries{}}
	// Interleaved, so that any prefix of the senders mixes the two protocols.
	for i := 0; i < max(httpN, grpcN); i++ {
		if i < httpN {
			p.senders = append(p.senders, &httpSender{url: gatewayURL, key: keys[len(p.senders)], client: client, retries: p.retries})
		}
		if i < grpcN {
			p.senders = append(p.senders, &grpcSender{key: keys[len(p.senders)], conn: conn, retries: p.retries})
		}
	}
	return p, nil
}

func (p *producers) close() { _ = p.conn.Close() }

// loadResult is what a load run measured at the producers.
type loadResult struct {
	Events      int
	First, Last time.Time // first request sent, last acknowledgement received
	// Retries are the requests sent again (flood), by the answer that made them.
	Retries map[string]int
}

func (r loadResult) rate() float64 { return float64(r.Events) / r.Last.Sub(r.First).Seconds() }

// flood sends the requests (render) as fast as the gateway takes them: every sender takes
// the next request as soon as its previous one is acknowledged.
func (p *producers) flood(ctx context.Context, reqs []*request) (loadResult, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	p.retries.take()
	res := loadResult{First: time.Now()}
	for _, r := range reqs {
		res.Events += r.events
	}
	var wg sync.WaitGroup
	for _, s := range p.senders {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(reqs) || ctx.Err() != nil {
					return
				}
				if err := s.send(ctx, reqs[k]); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	res.Last = time.Now()
	res.Retries = p.retries.take()
	return res, firstErr
}

// paced sends events of w at rate events/s for d: every tick a batch of what the rate
// owes is handed to the next free sender. When every sender is busy the tick waits, and
// the achieved rate (returned) falls short of the one asked.
func (p *producers) paced(ctx context.Context, w workload, rate float64, d time.Duration) (loadResult, error) {
	const tick = 50 * time.Millisecond
	type job struct{ from, n int }
	jobs := make(chan job)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, s := range p.senders {
		wg.Go(func() {
			for j := range jobs {
				// Paced phases render as they go: the rate is below what the machine
				// takes, and a soak's requests would not all fit in memory.
				if err := s.send(ctx, newRequest(w, j.from, j.n)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	res := loadResult{First: time.Now()}
	ticker := time.NewTicker(tick)
	sent := 0
	for now := res.First; now.Sub(res.First) < d && ctx.Err() == nil; now = <-ticker.C {
		owed := int(rate*now.Sub(res.First).Seconds()) + 1 - sent
		for owed > 0 {
			n := min(owed, 500)
			jobs <- job{from: sent, n: n}
			sent, owed = sent+n, owed-n
		}
	}
	ticker.Stop()
	close(jobs)
	wg.Wait()
	res.Events, res.Last = sent, time.Now()
	return res, firstErr
}

// producerKeys writes a keys file granting n producers (bench-01, ...) the ingest scope,
// each with the gateway's default quota, and returns the file and the keys. A league has
// many producers, each with its own quota: one anonymous producer would measure the
// default per-producer quota (2,000 events/s), not the gateway. The file is JSON, which
// is YAML too; the keys are made as pkg/apikey makes them ("bsk_" and 32 random bytes,
// unpadded base64url; the file holds their SHA-256).
func producerKeys(dir string, n int) (string, []string, error) {
	type entry struct {
		Producer string   `json:"producer"`
		SHA256   string   `json:"sha256"`
		Scopes   []string `json:"scopes"`
	}
	var file struct {
		Keys []entry `json:"keys"`
	}
	keys := make([]string, n)
	for i := range keys {
		var raw [32]byte
		_, _ = cryptorand.Read(raw[:]) // never fails since Go 1.24
		keys[i] = "bsk_" + base64.RawURLEncoding.EncodeToString(raw[:])
		sum := sha256.Sum256([]byte(keys[i]))
		file.Keys = append(file.Keys, entry{Producer: fmt.Sprintf("bench-%02d", i+1), SHA256: hex.EncodeToString(sum[:]), Scopes: []string{"ingest"}})
	}
	data, err := json.Marshal(file)
	if err != nil {
		return "", nil, fmt.Errorf("encode the keys file: %w", err)
	}
	path := filepath.Join(dir, "api-keys.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", nil, fmt.Errorf("write the keys file: %w", err)
	}
	return path, keys, nil
}
