package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// EventResult is the gateway's acknowledgement of one event of a 202.
type EventResult struct {
	Index          int    `json:"index"`
	EventID        string `json:"eventId"`
	ShardID        string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
}

// Answer is the gateway's answer to one POST /v1/stats.
type Answer struct {
	Status int
	Body   []byte
	// RetryAfter is the Retry-After header of a 429 or 503, 0 without one.
	RetryAfter time.Duration
	// Accepted and Results are the decoded body of a 202.
	Accepted int
	Results  []EventResult
}

// PostOptions say how a POST is made.
type PostOptions struct {
	// NDJSON sends application/x-ndjson instead of a JSON array.
	NDJSON bool
	// Traceparent, when set, is sent as the W3C traceparent header.
	Traceparent string
	// Edit, when set, changes each event's JSON before it is sent (to make it malformed).
	Edit func(event map[string]any)
}

// Body renders lines as a request body and returns its content type.
func Body(lines []Line, opts PostOptions) ([]byte, string, error) {
	events := make([]map[string]any, len(lines))
	for i, l := range lines {
		events[i] = l.Event()
		if opts.Edit != nil {
			opts.Edit(events[i])
		}
	}
	if !opts.NDJSON {
		body, err := json.Marshal(events)
		return body, "application/json", err
	}
	var buf bytes.Buffer
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, "", err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), "application/x-ndjson", nil
}

// TransportError is a request that got no whole answer: the gateway was down, or the
// connection broke mid-answer. Whether the events were taken is unknown.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Post sends one request to the ingest API at gatewayURL and reads the whole answer. No
// whole answer is a *TransportError.
func Post(ctx context.Context, client *http.Client, gatewayURL string, body []byte, contentType, traceparent string) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/v1/stats", bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", contentType)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, &TransportError{err}
	}
	defer resp.Body.Close()
	a := Answer{Status: resp.StatusCode}
	if a.Body, err = io.ReadAll(resp.Body); err != nil {
		return a, &TransportError{fmt.Errorf("read the %d answer: %w", resp.StatusCode, err)}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		a.RetryAfter = time.Duration(s) * time.Second
	}
	if a.Status == http.StatusAccepted {
		var got struct {
			Accepted int           `json:"accepted"`
			Results  []EventResult `json:"results"`
		}
		if err := json.Unmarshal(a.Body, &got); err != nil {
			return a, fmt.Errorf("202 body %q: %w", a.Body, err)
		}
		a.Accepted, a.Results = got.Accepted, got.Results
	}
	return a, nil
}

// Ledger records what the gateway accepted and refused, for the exactly-once checks. It
// is safe for concurrent producers.
type Ledger struct {
	mu       sync.Mutex
	accepted map[string]Line     // event id (the gateway's, for a line sent without) -> line
	refused  map[string]Line     // event id -> line, of requests refused whole
	order    map[int64][]Line    // per player, the accepted lines in acceptance order
	acked    map[string]string   // shard -> greatest sequence number acknowledged in it
	at       map[string]Position // event id -> where the gateway said it wrote the event
	events   map[string]int      // shard -> events acknowledged in it
	why      []string            // the first answers that refused a request
	posts    int
	retries  int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{accepted: map[string]Line{}, refused: map[string]Line{}, order: map[int64][]Line{},
		acked: map[string]string{}, events: map[string]int{}, at: map[string]Position{}}
}

// accept records a 202 for lines, checking that it acknowledges every event.
func (l *Ledger) accept(lines []Line, a Answer) error {
	if a.Accepted != len(lines) || len(a.Results) != len(lines) {
		return fmt.Errorf("202 says %d accepted with %d results for %d events: %.300s", a.Accepted, len(a.Results), len(lines), a.Body)
	}
	for i, r := range a.Results {
		if r.Index != i || r.ShardID == "" || r.SequenceNumber == "" || r.EventID == "" {
			return fmt.Errorf("202 result %d incomplete: %+v", i, r)
		}
		if lines[i].EventID != "" && r.EventID != lines[i].EventID {
			return fmt.Errorf("202 result %d: event id %q, sent %q", i, r.EventID, lines[i].EventID)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range a.Results {
		line := lines[i]
		line.EventID = r.EventID
		l.accepted[line.EventID] = line
		l.order[line.PlayerID] = append(l.order[line.PlayerID], line)
		l.events[r.ShardID]++
		l.at[line.EventID] = Position{Shard: r.ShardID, Sequence: r.SequenceNumber}
		if greater(r.SequenceNumber, l.acked[r.ShardID]) {
			l.acked[r.ShardID] = r.SequenceNumber
		}
	}
	return nil
}

func (l *Ledger) refuse(lines []Line, a Answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range lines {
		l.refused[line.EventID] = line
	}
	if len(l.why) < 5 {
		l.why = append(l.why, fmt.Sprintf("%d %.400s", a.Status, a.Body[max(bytes.Index(a.Body, []byte(`"errors"`)), 0):]))
	}
}

// Position is a record's place in the stream: its shard and sequence number.
type Position struct{ Shard, Sequence string }

// At returns where the gateway's (last) 202 for the event said it was written.
func (l *Ledger) At(eventID string) (Position, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.at[eventID]
	return p, ok
}

// Accepted returns the accepted lines by event id.
func (l *Ledger) Accepted() map[string]Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.accepted)
}

// AcceptedCount is how many distinct events were accepted so far.
func (l *Ledger) AcceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// Refused returns the lines of refused requests by event id.
func (l *Ledger) Refused() map[string]Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.refused)
}

// Order returns, per player, the accepted lines in the order they were accepted.
func (l *Ledger) Order() map[int64][]Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int64][]Line, len(l.order))
	for p, lines := range l.order {
		out[p] = append([]Line(nil), lines...)
	}
	return out
}

// Acked maps every shard the gateway acknowledged an event in to the greatest sequence
// number it acknowledged there.
func (l *Ledger) Acked() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acked)
}

// EventsPerShard maps every shard to the number of events the gateway acknowledged in it.
func (l *Ledger) EventsPerShard() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.events)
}

// Why returns the first refusals' status and errors.
func (l *Ledger) Why() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.why...)
}

// Posts returns how many POSTs were made and how many of them were retries.
func (l *Ledger) Posts() (posts, retries int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.posts, l.retries
}

// Producer sends lines to the ingest API and records the outcome in its ledger.
type Producer struct {
	URL    string
	Client *http.Client
	Ledger *Ledger
}

// NewProducer returns a producer for the gateway at url, recording in ledger.
func NewProducer(url string, ledger *Ledger) *Producer {
	return &Producer{URL: url, Client: &http.Client{Timeout: 30 * time.Second}, Ledger: ledger}
}

// Send POSTs lines once. A 202 is recorded as accepted (an error if it does not
// acknowledge every event with its shard and sequence number); a 4xx other than 429 as
// refused. Any other answer is returned for the caller to judge.
func (p *Producer) Send(ctx context.Context, lines []Line, opts PostOptions) (Answer, error) {
	return p.send(ctx, lines, opts, false)
}

func (p *Producer) send(ctx context.Context, lines []Line, opts PostOptions, retry bool) (Answer, error) {
	body, contentType, err := Body(lines, opts)
	if err != nil {
		return Answer{}, err
	}
	p.Ledger.mu.Lock()
	p.Ledger.posts++
	if retry {
		p.Ledger.retries++
	}
	p.Ledger.mu.Unlock()
	a, err := Post(ctx, p.Client, p.URL, body, contentType, opts.Traceparent)
	if err != nil {
		return a, err
	}
	switch {
	case a.Status == http.StatusAccepted:
		return a, p.Ledger.accept(lines, a)
	case a.Status >= 400 && a.Status < 500 && a.Status != http.StatusTooManyRequests:
		p.Ledger.refuse(lines, a)
	}
	return a, nil
}

// Deliver sends lines until the gateway accepts (202) or refuses them (4xx other than
// 429), always with the same event ids, as a producer may: 429 and 503 are waited out
// for their Retry-After (1s without one), other 5xx answers, connection errors and
// answers cut off are sent again after a short wait. It gives up when ctx ends.
func (p *Producer) Deliver(ctx context.Context, lines []Line, opts PostOptions) (Answer, error) {
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return Answer{}, fmt.Errorf("%d events from %s not accepted or refused before the deadline: %w", len(lines), lines[0].EventID, ctx.Err())
		}
		a, err := p.send(ctx, lines, opts, attempt > 0)
		var transport *TransportError
		var wait time.Duration
		switch {
		case errors.As(err, &transport):
			wait = 100 * time.Millisecond // down, restarting, or cut off mid-answer: send again
		case err != nil:
			return a, err // a 202 that does not acknowledge what was sent
		case a.Status == http.StatusAccepted || (a.Status >= 400 && a.Status < 500 && a.Status != http.StatusTooManyRequests):
			return a, nil
		case a.Status == http.StatusTooManyRequests || a.Status == http.StatusServiceUnavailable:
			wait = time.Second
			if a.RetryAfter > 0 {
				wait = a.RetryAfter
			}
		default: // 500: retrying with the same ids is safe, the gateway says
			wait = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// greater compares decimal sequence numbers; anything is greater than "".
func greater(a, b string) bool {
	if b == "" {
		return true
	}
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) > 0
}
