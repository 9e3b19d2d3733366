// Package chaos drives the four services as supervised processes while it kills, stops,
// pauses and restarts them, PostgreSQL and kinesalite, and then checks that the warehouse
// holds every accepted event exactly once.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// line is one batting line: as sent, and as the warehouse must hold it.
type line struct {
	EventID                                            string
	PlayerID                                           int64
	GameID, Date                                       string
	Version                                            int64
	PA, AB, R, H, D2, D3, HR, RBI, BB, SO, HBP, SF, SB int
	// Invalid lines break a consistency rule (hits > at bats): the gateway takes them, the
	// transformer dead-letters them.
	Invalid bool
}

func (l line) key() string { return fmt.Sprintf("%d/%s", l.PlayerID, l.GameID) }

func (l line) totalBases() int { return l.H - l.D2 - l.D3 - l.HR + 2*l.D2 + 3*l.D3 + 4*l.HR }

func (l line) event() map[string]any {
	return map[string]any{
		"eventId": l.EventID,
		"player":  map[string]any{"mlbId": strconv.FormatInt(l.PlayerID, 10), "name": fmt.Sprintf("Player %d", l.PlayerID), "team": "LAD"},
		"game":    map[string]any{"gameId": l.GameID, "date": l.Date, "gameNumber": 0, "opponent": "SD", "homeAway": "HOME_AWAY_HOME"},
		"version": strconv.FormatInt(l.Version, 10),
		"source":  "chaos",
		"batting": map[string]any{
			"plateAppearances": l.PA, "atBats": l.AB, "runs": l.R, "hits": l.H, "doubles": l.D2,
			"triples": l.D3, "homeRuns": l.HR, "rbi": l.RBI, "baseOnBalls": l.BB, "intentionalWalks": 0,
			"strikeOuts": l.SO, "hitByPitch": l.HBP, "sacBunts": 0, "sacFlies": l.SF, "stolenBases": l.SB,
			"caughtStealing": 0, "groundIntoDoublePlay": 0, "totalBases": l.totalBases(),
		},
	}
}

// randomLine makes a consistent batting line (the rules of pkg/statevent hold).
func randomLine(rng *rand.Rand, playerID int64, gameID, date string, version int64) line {
	pa := 3 + rng.IntN(3)
	bb := rng.IntN(2)
	hbp := rng.IntN(4) / 3
	sf := rng.IntN(5) / 4
	ab := pa - bb - hbp - sf
	h := rng.IntN(ab + 1)
	hr := rng.IntN(h+1) / 2
	d2 := rng.IntN(h-hr+1) / 2
	return line{
		EventID: fmt.Sprintf("chaos-%d-%s-v%d", playerID, gameID, version), PlayerID: playerID, GameID: gameID, Date: date,
		Version: version, PA: pa, AB: ab, R: min(pa, hr+rng.IntN(2)), H: h, D2: d2, HR: hr, RBI: hr + rng.IntN(2),
		BB: bb, SO: rng.IntN(ab - h + 1), HBP: hbp, SF: sf, SB: rng.IntN(2),
	}
}

// workload is what the producers send, in order, split into batches.
type workload struct {
	batches [][]line
	// refused are batches made to be refused whole (422): none of their events may land.
	refused [][]line
	events  int
}

// makeWorkload builds players*games distinct lines plus, for some of them, duplicates (the
// same event again, in another batch), corrections (versions 2 and 3, sometimes the
// higher first), a few impossible lines (dead-lettered) and a few refused batches.
func makeWorkload(rng *rand.Rand, players, games, batchSize int) workload {
	var all []line
	day := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC)
	for g := range games {
		date := day.AddDate(0, 0, g%180)
		gameID := fmt.Sprintf("G%s-%03d", date.Format("20060102"), g)
		for p := range players {
			playerID := int64(100000 + p)
			l := randomLine(rng, playerID, gameID, date.Format("2006-01-02"), 1)
			all = append(all, l)
			switch r := rng.IntN(100); {
			case r < 4: // a duplicate, sent later
				all = append(all, l)
			case r < 7: // corrected twice, in order
				all = append(all, randomLine(rng, playerID, gameID, l.Date, 2), randomLine(rng, playerID, gameID, l.Date, 3))
			case r < 9: // corrected twice, the higher version first: version 2 must not win
				all = append(all, randomLine(rng, playerID, gameID, l.Date, 3), randomLine(rng, playerID, gameID, l.Date, 2))
			}
		}
	}
	// A few impossible lines on games of their own.
	for i := range 5 {
		l := randomLine(rng, 999000+int64(i), "IMPOSSIBLE", "2024-09-29", 1)
		l.AB, l.H, l.HR, l.D2, l.D3, l.SO, l.RBI, l.R = 2, 3, 0, 0, 0, 0, 0, 0
		l.PA = l.AB + l.BB + l.HBP + l.SF
		l.Invalid = true
		all = append(all, l)
	}
	// Spread the later copies and corrections: shuffle within windows, so order varies
	// but a duplicate still comes after most of the stream has passed.
	for i := 0; i < len(all); i += 500 {
		window := all[i:min(i+500, len(all))]
		rng.Shuffle(len(window), func(a, b int) { window[a], window[b] = window[b], window[a] })
	}
	// The gateway refuses a batch naming one event id twice: a copy that would share a
	// batch with its original waits for a later one.
	w := workload{events: len(all)}
	var batch []line
	inBatch := map[string]bool{}
	for len(all) > 0 {
		l := all[0]
		all = all[1:]
		if inBatch[l.EventID] {
			all = append(all, l)
			continue
		}
		batch = append(batch, l)
		inBatch[l.EventID] = true
		if len(batch) == batchSize || len(all) == 0 {
			w.batches = append(w.batches, batch)
			batch, inBatch = nil, map[string]bool{}
		}
	}
	for i := range 3 {
		l := randomLine(rng, 998000+int64(i), "REFUSED", "2024-09-30", 1)
		w.refused = append(w.refused, []line{l})
	}
	return w
}

// ledger records what the gateway accepted and refused.
type ledger struct {
	mu       sync.Mutex
	accepted map[string]line // event id -> line, once some POST of it got 202
	refused  map[string]line
	// why holds the first answers that refused a batch.
	why     []string
	posts   int
	retries int
}

func newLedger() *ledger {
	return &ledger{accepted: map[string]line{}, refused: map[string]line{}}
}

// producer POSTs batches, retrying 429 and 503 after Retry-After and connection errors
// after a short wait, always with the same event ids.
type producer struct {
	url    string
	ledger *ledger
	client *http.Client
}

func (p *producer) send(ctx context.Context, batch []line, corrupt bool) error {
	events := make([]map[string]any, len(batch))
	for i, l := range batch {
		events[i] = l.event()
		if corrupt {
			events[i]["batting"].(map[string]any)["atBats"] = -1
		}
	}
	body, err := json.Marshal(events)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return fmt.Errorf("batch of %d from %s not accepted before the deadline: %w", len(batch), batch[0].EventID, ctx.Err())
		}
		p.ledger.mu.Lock()
		p.ledger.posts++
		if attempt > 0 {
			p.ledger.retries++
		}
		p.ledger.mu.Unlock()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/stats", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			time.Sleep(100 * time.Millisecond) // the gateway is down or restarting
			continue
		}
		data, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted && readErr == nil:
			var got struct {
				Accepted int `json:"accepted"`
			}
			if err := json.Unmarshal(data, &got); err != nil || got.Accepted != len(batch) {
				return fmt.Errorf("202 for %d events says %s", len(batch), data)
			}
			p.ledger.mu.Lock()
			for _, l := range batch {
				p.ledger.accepted[l.EventID] = l
			}
			p.ledger.mu.Unlock()
			return nil
		case resp.StatusCode == http.StatusAccepted:
			time.Sleep(100 * time.Millisecond) // cut off mid-answer: unknown, send again
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			time.Sleep(wait)
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			p.ledger.mu.Lock()
			for _, l := range batch {
				p.ledger.refused[l.EventID] = l
			}
			if len(p.ledger.why) < 5 {
				p.ledger.why = append(p.ledger.why, fmt.Sprintf("%d %.400s", resp.StatusCode, data[max(bytes.Index(data, []byte(`"errors"`)), 0):]))
			}
			p.ledger.mu.Unlock()
			return nil
		default: // 500: retrying with the same ids is safe, the gateway says
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// produce sends the workload with n concurrent producers, each batch followed by pause,
// and the refused batches spread among them. It returns once every batch was accepted or
// refused, or with the first error (it runs beside the test: it never calls t.Fatal).
func produce(ctx context.Context, led *ledger, url string, w workload, n int, pause time.Duration) error {
	work := make(chan []line)
	errs := make(chan error, n+1)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &producer{url: url, ledger: led, client: &http.Client{Timeout: 30 * time.Second}}
			for batch := range work {
				if err := p.send(ctx, batch, false); err != nil {
					errs <- err
					return
				}
				time.Sleep(pause)
			}
		}()
	}
	refusedAt := map[int][]line{}
	for k, batch := range w.refused {
		refusedAt[(k+1)*len(w.batches)/(len(w.refused)+1)] = batch
	}
	var firstErr error
feed:
	for i, batch := range w.batches {
		if refused, ok := refusedAt[i]; ok {
			p := &producer{url: url, ledger: led, client: &http.Client{Timeout: 30 * time.Second}}
			if err := p.send(ctx, refused, true); err != nil {
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
	if len(led.refused) == 0 && len(w.refused) > 0 {
		return errors.New("no batch was refused: the refused batches were not sent")
	}
	return nil
}

// producing runs produce beside the test; wait returns its ledger, failing the test on a
// producer error.
func producing(ctx context.Context, led *ledger, url string, w workload, n int, pause time.Duration) (wait func(t *testing.T) *ledger) {
	type result struct {
		led *ledger
		err error
	}
	done := make(chan result, 1)
	go func() {
		err := produce(ctx, led, url, w, n, pause)
		done <- result{led, err}
	}()
	return func(t *testing.T) *ledger {
		t.Helper()
		r := <-done
		if r.err != nil {
			t.Fatalf("producers: %v", r.err)
		}
		return r.led
	}
}

// probe sends one new line through the gateway (retrying until accepted) and waits until
// it is in the warehouse; it returns how long after since that was.
func (e *env) probe(led *ledger, n int, since time.Time, timeout time.Duration) (time.Duration, error) {
	l := randomLine(rand.New(rand.NewPCG(uint64(n), 9)), 777000+int64(n), "PROBE", "2024-09-28", 1)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p := &producer{url: e.stack.GatewayURL(), ledger: led, client: &http.Client{Timeout: 10 * time.Second}}
	if err := p.send(ctx, []line{l}, false); err != nil {
		return 0, err
	}
	for ctx.Err() == nil {
		var found bool
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		err := e.db.QueryRow(qctx, "SELECT EXISTS (SELECT 1 FROM boxscore.fact_batting_game WHERE event_id = $1)", l.EventID).Scan(&found)
		qcancel()
		if err == nil && found {
			return time.Since(since), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("probe %s not in the warehouse within %s", l.EventID, timeout)
}

// env is one test's pipeline and its ways to look at it.
type env struct {
	t       *testing.T
	stack   *stack.Stack
	stream  string
	kinesis *kinesis.Client
	db      *pgxpool.Pool
}

func newEnv(t *testing.T, s *stack.Stack, stream string, kinesisClient *kinesis.Client, dbURL string) *env {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &env{t: t, stack: s, stream: stream, kinesis: kinesisClient, db: pool}
}

// streamEnds returns the sequence number of the last record in every shard.
func (e *env) streamEnds() (map[string]string, error) {
	ctx := context.Background()
	shards, err := e.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(e.stream)})
	if err != nil {
		return nil, err
	}
	ends := map[string]string{}
	for _, shard := range shards.Shards {
		it, err := e.kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(e.stream),
			ShardId: shard.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, err
		}
		iterator := it.ShardIterator
		for iterator != nil {
			out, err := e.kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, err
			}
			for _, r := range out.Records {
				ends[aws.ToString(shard.ShardId)] = aws.ToString(r.SequenceNumber)
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iterator = out.NextShardIterator
		}
	}
	return ends, nil
}

// checkpointsAt reports whether every shard's committed checkpoint is want's.
func (e *env) checkpointsAt(want map[string]string) bool {
	for shard, seq := range want {
		var got string
		if err := e.db.QueryRow(context.Background(), "SELECT sequence_number FROM boxscore.shard_checkpoint WHERE stream=$1 AND shard_id=$2",
			e.stream, shard).Scan(&got); err != nil || got != seq {
			return false
		}
	}
	return true
}

// settle waits until every shard's checkpoint is the last record in the stream.
func (e *env) settle(timeout time.Duration) {
	e.t.Helper()
	ends, err := e.streamEnds()
	if err != nil {
		e.t.Fatalf("read the stream's ends: %v", err)
	}
	if len(ends) == 0 {
		e.t.Fatal("the stream is empty")
	}
	e.waitFor(timeout, "checkpoints at the end of every shard", func() bool { return e.checkpointsAt(ends) })
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.dumpLogs()
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *env) dumpLogs() {
	for _, name := range stack.Services {
		e.t.Logf("--- %s log (tail) ---\n%s", name, e.stack.LogTail(name, 15))
	}
}

// count runs a count query.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// assertExactlyOnce checks the warehouse against the ledger: every accepted (player, game)
// once, with its greatest accepted (version, event_id); impossible lines dead-lettered with
// a reason and no row; nothing for refused events; no other rows.
func (e *env) assertExactlyOnce(led *ledger) {
	e.t.Helper()
	want := map[string]line{}
	invalid := map[string]line{}
	for _, l := range led.accepted {
		if l.Invalid {
			invalid[l.EventID] = l
			continue
		}
		cur, ok := want[l.key()]
		if !ok || l.Version > cur.Version || (l.Version == cur.Version && l.EventID > cur.EventID) {
			want[l.key()] = l
		}
	}
	rows, err := e.db.Query(context.Background(), `
		SELECT player_id, game_id, event_id, version, plate_appearances, at_bats, runs, hits, doubles, triples,
		       home_runs, rbi, base_on_balls, strike_outs, hit_by_pitch, sac_flies, stolen_bases, total_bases
		FROM boxscore.fact_batting_game`)
	if err != nil {
		e.t.Fatal(err)
	}
	seen := map[string]bool{}
	mismatches := 0
	for rows.Next() {
		var got line
		var tb int
		if err := rows.Scan(&got.PlayerID, &got.GameID, &got.EventID, &got.Version, &got.PA, &got.AB, &got.R, &got.H,
			&got.D2, &got.D3, &got.HR, &got.RBI, &got.BB, &got.SO, &got.HBP, &got.SF, &got.SB, &tb); err != nil {
			e.t.Fatal(err)
		}
		k := got.key()
		if seen[k] {
			e.t.Errorf("two rows for %s", k) // impossible with the primary key; checked anyway
		}
		seen[k] = true
		w, ok := want[k]
		got.Date = w.Date
		switch {
		case !ok:
			if _, refused := led.refused[got.EventID]; refused {
				e.t.Errorf("row %s comes from a refused event %s", k, got.EventID)
			} else {
				e.t.Errorf("row %s (event %s) for an event never accepted", k, got.EventID)
			}
		case got != w || tb != w.totalBases():
			if mismatches++; mismatches <= 10 {
				e.t.Errorf("row %s:\n got %+v\nwant %+v", k, got, w)
			}
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	missing := 0
	for k := range want {
		if !seen[k] {
			if missing++; missing <= 10 {
				e.t.Errorf("accepted line %s is not in the warehouse", k)
			}
		}
	}
	if missing > 0 || mismatches > 0 {
		e.t.Errorf("%d accepted lines missing, %d rows with the wrong version or values, of %d", missing, mismatches, len(want))
	}

	// Dead letters: exactly the impossible lines, each once with its reason.
	dead, err := e.db.Query(context.Background(), "SELECT coalesce(event_id, ''), stage, reason FROM boxscore.dead_letter")
	if err != nil {
		e.t.Fatal(err)
	}
	deadSeen := map[string]bool{}
	for dead.Next() {
		var id, stage, reason string
		if err := dead.Scan(&id, &stage, &reason); err != nil {
			e.t.Fatal(err)
		}
		if _, ok := invalid[id]; !ok {
			e.t.Errorf("unexpected dead letter %q (stage %s, reason %s)", id, stage, reason)
		}
		if deadSeen[id] {
			e.t.Errorf("dead letter %s twice", id)
		}
		deadSeen[id] = true
		if stage != "validate" || reason == "" {
			e.t.Errorf("dead letter %s: stage %q reason %q", id, stage, reason)
		}
	}
	if err := dead.Err(); err != nil {
		e.t.Fatal(err)
	}
	for id := range invalid {
		if !deadSeen[id] {
			e.t.Errorf("impossible line %s is not dead-lettered", id)
		}
	}
	e.t.Logf("refusals: %q", led.why)
	e.t.Logf("warehouse: %d rows as expected (%d accepted events, %d refused), %d dead letters", len(seen), len(led.accepted), len(led.refused), len(deadSeen))
}

// lastLoad is the newest load time in the warehouse, per the database's clock.
func (e *env) rowsLoadedSince(since time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var n int
	err := e.db.QueryRow(ctx, "SELECT count(*) FROM boxscore.fact_batting_game WHERE loaded_at > $1", since).Scan(&n)
	return n, err
}

// flowingAgain waits (up to timeout) until a row commits after since, and says how long
// after since that was.
func (e *env) flowingAgain(since time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if n, err := e.rowsLoadedSince(since); err == nil && n > 0 {
			return time.Since(since), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, errors.New("no row committed")
}

// dbSchemaReady waits for the loader's migrations (the first start creates the tables).
func (e *env) schemaReady() {
	e.t.Helper()
	e.waitFor(30*time.Second, "the warehouse schema", func() bool {
		var ok bool
		err := e.db.QueryRow(context.Background(), "SELECT to_regclass('boxscore.fact_batting_game') IS NOT NULL").Scan(&ok)
		return err == nil && ok
	})
}

// supervised starts the stack with every service supervised.
func supervised(t *testing.T, s *stack.Stack) {
	t.Helper()
	for _, name := range stack.Services {
		s.Supervise(name)
	}
	s.StartAll()
}

// consumerLeaseFlags are the consumer's lease flags for fault tests: a short failover time
// so that takeovers happen within the tests' patience.
func consumerLeaseFlags(dbURL string) []string {
	return []string{"--lease-database-url", dbURL, "--lease-failover-time", "3s"}
}
