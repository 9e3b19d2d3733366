// Package chaos drives the four services as supervised processes while it kills, stops,
// pauses and restarts them, PostgreSQL and kinesalite, and then checks that the warehouse
// holds every accepted event exactly once.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// workload is what the producers send, in order, split into batches.
type workload struct {
	batches [][]stack.Line
	// refused are batches made to be refused whole (422): none of their events may land.
	refused [][]stack.Line
	events  int
}

// makeWorkload builds players*games distinct lines plus, for some of them, duplicates (the
// same event again, in another batch), corrections (versions 2 and 3, sometimes the
// higher first) and a few refused batches.
func makeWorkload(rng *rand.Rand, players, games, batchSize int) workload {
	line := func(player int64, gameID, date string, version int64) stack.Line {
		return stack.RandomLine(rng, "chaos", player, gameID, date, version)
	}
	var all []stack.Line
	day := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC)
	for g := range games {
		date := day.AddDate(0, 0, g%180).Format("2006-01-02")
		gameID := fmt.Sprintf("G%s-%03d", day.AddDate(0, 0, g%180).Format("20060102"), g)
		for p := range players {
			playerID := int64(100000 + p)
			l := line(playerID, gameID, date, 1)
			all = append(all, l)
			switch r := rng.IntN(100); {
			case r < 4: // a duplicate, sent later
				all = append(all, l)
			case r < 7: // corrected twice, in order
				all = append(all, line(playerID, gameID, date, 2), line(playerID, gameID, date, 3))
			case r < 9: // corrected twice, the higher version first: version 2 must not win
				all = append(all, line(playerID, gameID, date, 3), line(playerID, gameID, date, 2))
			}
		}
	}
	// No impossible lines: the gateway refuses them (422), which would refuse their whole
	// batch. The transformer's dead-lettering of such lines is covered by the crafted
	// records written straight to the stream (stack.CraftedRecords: one per round).
	// Spread the later copies and corrections: shuffle within windows, so order varies
	// but a duplicate still comes after most of the stream has passed.
	for i := 0; i < len(all); i += 500 {
		window := all[i:min(i+500, len(all))]
		rng.Shuffle(len(window), func(a, b int) { window[a], window[b] = window[b], window[a] })
	}
	// The gateway refuses a batch naming one event id twice: a copy that would share a
	// batch with its original closes that batch and starts the next. (Sending the copy
	// to the back of the queue instead loops for ever once only such copies are left.)
	w := workload{events: len(all)}
	var batch []stack.Line
	inBatch := map[string]bool{}
	for _, l := range all {
		if inBatch[l.EventID] {
			w.batches = append(w.batches, batch)
			batch, inBatch = nil, map[string]bool{}
		}
		batch = append(batch, l)
		inBatch[l.EventID] = true
		if len(batch) == batchSize {
			w.batches = append(w.batches, batch)
			batch, inBatch = nil, map[string]bool{}
		}
	}
	if len(batch) > 0 {
		w.batches = append(w.batches, batch)
	}
	for i := range 3 {
		w.refused = append(w.refused, []stack.Line{line(998000+int64(i), "REFUSED", "2024-09-30", 1)})
	}
	return w
}

// malformed makes an event the gateway refuses (422): a negative at-bats count.
var malformed = stack.PostOptions{Edit: func(ev map[string]any) { ev["batting"].(map[string]any)["atBats"] = -1 }}

// produce sends the workload with n concurrent producers, each batch followed by pause,
// and the refused batches spread among them. It returns once every batch was accepted or
// refused, or with the first error (it runs beside the test: it never calls t.Fatal).
func produce(ctx context.Context, led *stack.Ledger, url string, w workload, n int, pause time.Duration) error {
	work := make(chan []stack.Line)
	errs := make(chan error, n+1)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			p := stack.NewProducer(url, led)
			for batch := range work {
				if _, err := p.Deliver(ctx, batch, stack.PostOptions{}); err != nil {
					errs <- err
					return
				}
				time.Sleep(pause)
			}
		})
	}
	refusedAt := map[int][]stack.Line{}
	for k, batch := range w.refused {
		refusedAt[(k+1)*len(w.batches)/(len(w.refused)+1)] = batch
	}
	var firstErr error
feed:
	for i, batch := range w.batches {
		if refused, ok := refusedAt[i]; ok {
			if _, err := stack.NewProducer(url, led).Deliver(ctx, refused, malformed); err != nil {
				firstErr = err
				break
			}
		}
		select {
		case work <- batch:
		case firstErr = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		firstErr = errors.Join(firstErr, err)
	}
	if firstErr != nil {
		return firstErr
	}
	if len(led.Refused()) == 0 && len(w.refused) > 0 {
		return errors.New("no batch was refused: the refused batches were not sent")
	}
	return nil
}

// producing runs produce beside the test, recording in a new ledger, for at most timeout;
// wait fails the test on a producer error.
func producing(t *testing.T, p *stack.Pipeline, w workload, n int, pause, timeout time.Duration) (led *stack.Ledger, wait func(t *testing.T)) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	led = stack.NewLedger()
	done := make(chan error, 1)
	go func() { done <- produce(ctx, led, p.GatewayURL(), w, n, pause) }()
	return led, func(t *testing.T) {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("producers: %v", err)
		}
	}
}

// probe sends one new line through the gateway (retrying until accepted) and waits until
// it is in the warehouse; it returns how long after since that was.
func probe(p *stack.Pipeline, led *stack.Ledger, n int, since time.Time, timeout time.Duration) (time.Duration, error) {
	l := stack.RandomLine(rand.New(rand.NewPCG(uint64(n), 9)), "chaos", 777000+int64(n), "PROBE", "2024-09-28", 1)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := stack.NewProducer(p.GatewayURL(), led).Deliver(ctx, []stack.Line{l}, stack.PostOptions{}); err != nil {
		return 0, err
	}
	for ctx.Err() == nil {
		var found bool
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		err := p.DB.QueryRow(qctx, "SELECT EXISTS (SELECT 1 FROM boxscore.fact_batting_game WHERE event_id = $1)", l.EventID).Scan(&found)
		qcancel()
		if err == nil && found {
			return time.Since(since), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("probe %s not in the warehouse within %s", l.EventID, timeout)
}

// flowingAgain waits (up to timeout) until a row commits after since, and says how long
// after since that was.
func flowingAgain(p *stack.Pipeline, since time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if n, err := rowsLoadedSince(p, since); err == nil && n > 0 {
			return time.Since(since), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, errors.New("no row committed")
}

// rowsLoadedSince counts the rows committed after since.
func rowsLoadedSince(p *stack.Pipeline, since time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var n int
	err := p.DB.QueryRow(ctx, "SELECT count(*) FROM boxscore.fact_batting_game WHERE loaded_at > $1", since).Scan(&n)
	return n, err
}

// supervised starts the stack with every service supervised, and waits for the schema.
func supervised(p *stack.Pipeline) {
	p.T.Helper()
	for _, name := range stack.Services {
		p.Supervise(name)
	}
	p.StartAll()
	p.WaitSchema()
}

// gatewayFlags keep clients' waits short (Retry-After derives from the retry budget): the
// stream is down for seconds, not minutes.
var gatewayFlags = []string{"--publish-retry-budget", "5s"}

// consumerLeaseFlags are the consumer's lease flags for fault tests: a short failover time
// so that takeovers happen within the tests' patience.
var consumerLeaseFlags = []string{"--lease-failover-time", "3s"}
