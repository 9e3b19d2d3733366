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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

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
	send(ctx context.Context, lines []stack.Line) error
	protocol() string
}

// retryWait is how long a sender waits before sending a request again when the gateway
// gave no Retry-After.
const retryWait = 200 * time.Millisecond

type httpSender struct {
	url    string
	key    string
	client *http.Client
}

func (h *httpSender) protocol() string { return "http" }

func (h *httpSender) send(ctx context.Context, lines []stack.Line) error {
	body, contentType, err := stack.Body(lines, stack.PostOptions{NDJSON: true})
	if err != nil {
		return fmt.Errorf("render %d events: %w", len(lines), err)
	}
	for {
		a, err := h.post(ctx, body, contentType)
		var transport *stack.TransportError
		wait := retryWait
		switch {
		case errors.As(err, &transport):
		case err != nil:
			return fmt.Errorf("POST %d events from %s: %w", len(lines), lines[0].EventID, err)
		case a.Status == http.StatusAccepted:
			if a.Accepted != len(lines) {
				return fmt.Errorf("POST %d events from %s: 202 accepted %d", len(lines), lines[0].EventID, a.Accepted)
			}
			return nil
		case a.Status == http.StatusTooManyRequests || a.Status >= 500:
			if a.RetryAfter > 0 {
				wait = a.RetryAfter
			}
		default:
			return fmt.Errorf("POST %d events from %s: %d %.300s", len(lines), lines[0].EventID, a.Status, a.Body)
		}
		if ctx.Err() != nil {
			last := err
			if last == nil {
				last = fmt.Errorf("answer %d", a.Status)
			}
			return fmt.Errorf("POST %d events from %s: %w (last: %w)", len(lines), lines[0].EventID, ctx.Err(), last)
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
	key    string
	client ingestv1.IngestServiceClient
}

func (g *grpcSender) protocol() string { return "grpc" }

func (g *grpcSender) send(ctx context.Context, lines []stack.Line) error {
	req := &ingestv1.PutStatsRequest{Events: make([]*statsv1.StatEvent, len(lines))}
	for i, l := range lines {
		// The same event the HTTP API would take: its JSON, read as the proto.
		js, err := json.Marshal(l.Event())
		if err != nil {
			return fmt.Errorf("render %s: %w", l.EventID, err)
		}
		ev := &statsv1.StatEvent{}
		if err := protojson.Unmarshal(js, ev); err != nil {
			return fmt.Errorf("event %s as a StatEvent: %w", l.EventID, err)
		}
		req.Events[i] = ev
	}
	for {
		resp, err := g.client.PutStats(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.key), req)
		if err == nil {
			if len(resp.GetResults()) != len(lines) {
				return fmt.Errorf("PutStats %d events from %s: %d results", len(lines), lines[0].EventID, len(resp.GetResults()))
			}
			return nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		default:
			return fmt.Errorf("PutStats %d events from %s: %w", len(lines), lines[0].EventID, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("PutStats %d events from %s: %w (last: %w)", len(lines), lines[0].EventID, ctx.Err(), err)
		}
		time.Sleep(retryWait)
	}
}

// producers are the bench's concurrent clients of the gateway, half HTTP, half gRPC.
type producers struct {
	senders []sender
	conn    *grpc.ClientConn
}

func newProducers(gatewayURL, grpcAddr string, keys []string, httpN, grpcN int) (*producers, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("gRPC client of %s: %w", grpcAddr, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = httpN
	client := &http.Client{Timeout: 60 * time.Second, Transport: transport}
	p := &producers{conn: conn}
	// Interleaved, so that any prefix of the senders mixes the two protocols.
	for i := 0; i < max(httpN, grpcN); i++ {
		if i < httpN {
			p.senders = append(p.senders, &httpSender{url: gatewayURL, key: keys[len(p.senders)], client: client})
		}
		if i < grpcN {
			p.senders = append(p.senders, &grpcSender{key: keys[len(p.senders)], client: ingestv1.NewIngestServiceClient(conn)})
		}
	}
	return p, nil
}

func (p *producers) close() { _ = p.conn.Close() }

// loadResult is what a load run measured at the producers.
type loadResult struct {
	Events      int
	First, Last time.Time // first request sent, last acknowledgement received
}

func (r loadResult) rate() float64 { return float64(r.Events) / r.Last.Sub(r.First).Seconds() }

// flood sends events [0, n) of w as fast as the gateway takes them: every sender takes the
// next batch as soon as its previous one is acknowledged.
func (p *producers) flood(ctx context.Context, w workload, n, batch int) (loadResult, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	res := loadResult{Events: n, First: time.Now()}
	var wg sync.WaitGroup
	for _, s := range p.senders {
		wg.Go(func() {
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= n || ctx.Err() != nil {
					return
				}
				if err := s.send(ctx, w.lines(from, min(batch, n-from))); err != nil {
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
				if err := s.send(ctx, w.lines(j.from, j.n)); err != nil {
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
