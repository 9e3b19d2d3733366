// Package group tests the shard-consumer's consumer group on real processes: several
// consumer replicas sharing the shards of a kinesalite stream through leases in PostgreSQL,
// while events flow through the gateway, the transformer and the loader. It checks
// balancing, scaling, failover, graceful handover, resharding and a blocked warehouse, and
// after each that the warehouse holds every accepted event exactly once.
package group

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// Every test runs the group on a stream of this many shards.
const shardCount = 8

// failoverTime is the consumers' --lease-failover-time: short, so failover tests take
// seconds.
const failoverTime = 3 * time.Second

// line is one batting line: as sent, and as the warehouse must hold it.
type line struct {
	EventID           string
	PlayerID          int64
	GameID, Date      string
	PA, AB, H, HR, BB int
}

func (l line) event() map[string]any {
	return map[string]any{
		"eventId": l.EventID,
		"player":  map[string]any{"mlbId": strconv.FormatInt(l.PlayerID, 10), "name": fmt.Sprintf("Player %d", l.PlayerID), "team": "LAD"},
		"game":    map[string]any{"gameId": l.GameID, "date": l.Date, "gameNumber": 0, "opponent": "SD", "homeAway": "HOME_AWAY_HOME"},
		"version": "1",
		"source":  "group",
		"batting": map[string]any{
			"plateAppearances": l.PA, "atBats": l.AB, "runs": l.HR, "hits": l.H, "doubles": 0,
			"triples": 0, "homeRuns": l.HR, "rbi": l.HR, "baseOnBalls": l.BB, "intentionalWalks": 0,
			"strikeOuts": 0, "hitByPitch": 0, "sacBunts": 0, "sacFlies": 0, "stolenBases": 0,
			"caughtStealing": 0, "groundIntoDoublePlay": 0, "totalBases": l.H + 3*l.HR,
		},
	}
}

// gameLine makes player's consistent line of game g (PA = AB + BB, HR ≤ H ≤ AB).
func gameLine(rng *rand.Rand, playerID int64, g int) line {
	date := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g%180)
	pa := 3 + rng.IntN(3)
	bb := rng.IntN(2)
	ab := pa - bb
	h := rng.IntN(ab + 1)
	return line{
		EventID: fmt.Sprintf("group-%d-g%05d", playerID, g), PlayerID: playerID,
		GameID: fmt.Sprintf("G%05d", g), Date: date.Format("2006-01-02"),
		PA: pa, AB: ab, H: h, HR: rng.IntN(h+1) / 2, BB: bb,
	}
}

// flow sends one game of every player per POST, one POST after the other, until stopped:
// each player's games reach the gateway — and so its shard — in game order.
type flow struct {
	t       *testing.T
	url     string
	players []int64
	pause   time.Duration
	client  *http.Client
	stop    chan struct{}
	done    chan error

	stopFn func() error

	mu       sync.Mutex
	accepted map[string]line  // event id -> line, once a POST of it got 202
	order    map[int64][]line // per player, the accepted lines in send order
	retries  int
}

// startFlow starts sending games of players numbered from 100000 through url.
func startFlow(t *testing.T, url string, players int, pause time.Duration) *flow {
	f := &flow{t: t, url: url, pause: pause, client: &http.Client{Timeout: 30 * time.Second},
		stop: make(chan struct{}), done: make(chan error, 1),
		accepted: map[string]line{}, order: map[int64][]line{}}
	for p := range players {
		f.players = append(f.players, int64(100000+p))
	}
	go func() { f.done <- f.run() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			close(f.stop)
			<-f.done
		}
	})
	f.stopFn = func() error {
		stopped = true
		close(f.stop)
		return <-f.done
	}
	return f
}

func (f *flow) run() error {
	rng := rand.New(rand.NewPCG(uint64(len(f.players)), 5))
	for g := 0; ; g++ {
		select {
		case <-f.stop:
			return nil
		default:
		}
		batch := make([]line, len(f.players))
		for i, p := range f.players {
			batch[i] = gameLine(rng, p, g)
		}
		if err := f.send(batch); err != nil {
			return err
		}
		select {
		case <-f.stop:
			return nil
		case <-time.After(f.pause):
		}
	}
}

// send POSTs the batch until the gateway accepts it (202), waiting out 429 and 503.
func (f *flow) send(batch []line) error {
	events := make([]map[string]any, len(batch))
	for i, l := range batch {
		events[i] = l.event()
	}
	body, err := json.Marshal(events)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("batch of game %s not accepted within 60s", batch[0].GameID)
		}
		if attempt > 0 {
			f.mu.Lock()
			f.retries++
			f.mu.Unlock()
		}
		resp, err := f.client.Post(f.url+"/v1/stats", "application/json", bytes.NewReader(body))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		data, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted && readErr == nil:
			f.mu.Lock()
			for _, l := range batch {
				f.accepted[l.EventID] = l
				f.order[l.PlayerID] = append(f.order[l.PlayerID], l)
			}
			f.mu.Unlock()
			return nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			time.Sleep(wait)
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			return fmt.Errorf("gateway refused a consistent batch: %d %.500s", resp.StatusCode, data)
		default:
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// finish stops the flow after the POST in progress and fails the test if it failed.
func (f *flow) finish() {
	f.t.Helper()
	if err := f.stopFn(); err != nil {
		f.t.Fatalf("producer: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t.Logf("producer: %d events accepted, %d POSTs retried", len(f.accepted), f.retries)
}

// acceptedCount is how many events the gateway accepted so far.
func (f *flow) acceptedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.accepted)
}

// env is one test's pipeline and its ways to look at it.
type env struct {
	t       *testing.T
	stack   *stack.Stack
	stream  string
	kinesis *kinesis.Client
	db      *pgxpool.Pool
	// replicas is how many consumer replicas were started (1..replicas).
	replicas int
}

// newGroup starts the pipeline with consumer replicas 1..replicas on a stream of
// shardCount shards and waits for the warehouse schema.
func newGroup(t *testing.T, replicas int) *env {
	t.Helper()
	kinesalite := kinesalitetest.Start(t)
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, shardCount)
	dbURL := pgtest.NewDatabase(t)
	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL,
		Env: map[string][]string{
			stack.Consumer: {"--lease-failover-time", failoverTime.String(), "--shard-sync-interval", "1s"},
			stack.Gateway:  {"--publish-retry-budget", "5s"},
		}})
	s.StartAll()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{t: t, stack: s, stream: streamName, kinesis: kinesalite.Client(t), db: pool, replicas: 1}
	for e.replicas < replicas {
		e.startReplica()
	}
	e.waitFor(30*time.Second, "the warehouse schema", func() bool {
		var ok bool
		err := e.db.QueryRow(context.Background(), "SELECT to_regclass('boxscore.fact_batting_game') IS NOT NULL").Scan(&ok)
		return err == nil && ok
	})
	return e
}

// replicaNames are the instance names of consumer replicas 1..n.
func replicaNames(from, to int) []string {
	var names []string
	for n := from; n <= to; n++ {
		names = append(names, stack.InstanceName(stack.Consumer, n))
	}
	return names
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) time.Duration {
	e.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.dumpLogs()
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func (e *env) dumpLogs() {
	for _, name := range e.consumerInstances() {
		// The last lines other than routine commits: lease moves, shard starts and ends.
		var kept []string
		for _, l := range strings.Split(e.stack.Log(name), "\n") {
			if l != "" && !strings.Contains(l, `"batch committed"`) {
				kept = append(kept, l)
			}
		}
		e.t.Logf("--- %s log (tail, commits left out) ---\n%s", name, strings.Join(kept[max(len(kept)-40, 0):], "\n"))
	}
	e.t.Logf("--- loader log (tail) ---\n%s", e.stack.LogTail(stack.Loader, 10))
}

// consumerInstances names the consumer replicas started so far (running or not).
func (e *env) consumerInstances() []string { return replicaNames(1, e.replicas) }

// startReplica starts the next consumer replica and returns its instance name.
func (e *env) startReplica() string {
	e.t.Helper()
	e.replicas++
	return e.stack.StartReplica(stack.Consumer, e.replicas)
}

// now is the database's clock, which stamps checkpoints and rows.
func (e *env) now() time.Time {
	e.t.Helper()
	var t time.Time
	if err := e.db.QueryRow(context.Background(), "SELECT now()").Scan(&t); err != nil {
		e.t.Fatal(err)
	}
	return t
}

// leaseRow is one row of the lease table.
type leaseRow struct {
	Owner   string
	Counter int64
}

// leases reads the lease table: shard id -> row.
func (e *env) leases(ctx context.Context) (map[string]leaseRow, error) {
	rows, err := e.db.Query(ctx, `SELECT shard_id, coalesce(owner, ''), counter FROM boxscore_lease.shard_lease WHERE stream = $1`, e.stream)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]leaseRow{}
	for rows.Next() {
		var id string
		var l leaseRow
		if err := rows.Scan(&id, &l.Owner, &l.Counter); err != nil {
			return nil, err
		}
		out[id] = l
	}
	return out, rows.Err()
}

// assignment is what a replica's GET /leases answers.
type assignment struct {
	Worker string `json:"worker"`
	Shards []struct {
		ShardID string `json:"shardId"`
		Token   int64  `json:"leaseToken"`
		Reading bool   `json:"reading"`
	} `json:"shards"`
}

func (e *env) assignment(name string) (assignment, error) {
	var a assignment
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(e.stack.AdminURL(name) + "/leases")
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("GET /leases of %s: %s", name, resp.Status)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}

// workerID is the consumer id (lease owner) of a running replica.
func (e *env) workerID(name string) string {
	e.t.Helper()
	p := e.stack.Current(name)
	if p == nil {
		e.t.Fatalf("%s is not running", name)
	}
	return p.ConsumerID
}

// balanced reports whether the open shards' leases are spread over exactly the live
// replicas with the given loads (in any order), in the lease table and in every replica's
// GET /leases alike, each replica reading every shard it holds. It returns a description
// of the spread for messages.
func (e *env) balanced(live []string, want []int) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	table, err := e.leases(ctx)
	if err != nil {
		return false, err.Error()
	}
	open, err := e.openShards(ctx)
	if err != nil {
		return false, err.Error()
	}
	byOwner := map[string][]string{}
	for id := range open {
		byOwner[table[id].Owner] = append(byOwner[table[id].Owner], id)
	}
	var loads []int
	desc := []string{}
	ok := true
	for _, name := range live {
		p := e.stack.Current(name)
		if p == nil {
			return false, name + " is down"
		}
		mine := byOwner[p.ConsumerID]
		sort.Strings(mine)
		loads = append(loads, len(mine))
		a, err := e.assignment(name)
		if err != nil {
			return false, err.Error()
		}
		var served []string
		for _, s := range a.Shards {
			if _, isOpen := open[s.ShardID]; isOpen {
				served = append(served, s.ShardID)
			}
			if !s.Reading {
				ok = false
				desc = append(desc, fmt.Sprintf("%s holds %s without reading it", name, s.ShardID))
			}
		}
		sort.Strings(served)
		if a.Worker != p.ConsumerID || strings.Join(served, ",") != strings.Join(mine, ",") {
			ok = false
		}
		desc = append(desc, fmt.Sprintf("%s: table %d, /leases %d", name, len(mine), len(served)))
		delete(byOwner, p.ConsumerID)
	}
	if len(byOwner) > 0 {
		ok = false
		for owner, ids := range byOwner {
			desc = append(desc, fmt.Sprintf("owner %q: %d", owner, len(ids)))
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(loads)))
	wantSorted := append([]int(nil), want...)
	sort.Sort(sort.Reverse(sort.IntSlice(wantSorted)))
	return ok && fmt.Sprint(loads) == fmt.Sprint(wantSorted), strings.Join(desc, "; ")
}

// waitBalanced waits until balanced and returns how long that took.
func (e *env) waitBalanced(timeout time.Duration, live []string, want []int) time.Duration {
	e.t.Helper()
	var last string
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, desc := e.balanced(live, want)
		if ok {
			e.t.Logf("balanced %v after %s: %s", want, time.Since(start).Round(time.Millisecond), desc)
			return time.Since(start)
		}
		last = desc
		if time.Now().After(deadline) {
			e.dumpLogs()
			e.t.Fatalf("leases not balanced %v within %s; last seen: %s", want, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openShards lists the stream's open shards (no ending sequence number).
func (e *env) openShards(ctx context.Context) (map[string]types.Shard, error) {
	all, err := e.shards(ctx)
	if err != nil {
		return nil, err
	}
	open := map[string]types.Shard{}
	for id, s := range all {
		if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
			open[id] = s
		}
	}
	return open, nil
}

// shards lists every shard of the stream, open and closed.
func (e *env) shards(ctx context.Context) (map[string]types.Shard, error) {
	out := map[string]types.Shard{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(e.stream)}
	for {
		page, err := e.kinesis.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Shards {
			out[aws.ToString(s.ShardId)] = s
		}
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// settle waits until the warehouse holds as many rows as events were accepted (each
// accepted event is a distinct player and game) and every shard's checkpoint is at the
// shard's last record.
func (e *env) settle(f *flow, timeout time.Duration) {
	e.t.Helper()
	want := f.acceptedCount()
	e.waitFor(timeout, fmt.Sprintf("%d rows in the warehouse", want), func() bool {
		var n int
		err := e.db.QueryRow(context.Background(), "SELECT count(*) FROM boxscore.fact_batting_game").Scan(&n)
		return err == nil && n >= want
	})
	ends, err := e.streamEnds()
	if err != nil {
		e.t.Fatalf("read the stream's ends: %v", err)
	}
	e.waitFor(timeout, "checkpoints at the end of every shard", func() bool {
		for shard, seq := range ends {
			var got string
			if err := e.db.QueryRow(context.Background(), "SELECT sequence_number FROM boxscore.shard_checkpoint WHERE stream = $1 AND shard_id = $2",
				e.stream, shard).Scan(&got); err != nil || got != seq {
				return false
			}
		}
		return true
	})
}

// streamEnds returns the sequence number of the last record of every shard that has any,
// and counts the records.
func (e *env) streamEnds() (map[string]string, error) {
	ends, _, err := e.readStream()
	return ends, err
}

// readStream reads every shard from its start: the last sequence number of each shard and
// the number of records in the stream.
func (e *env) readStream() (map[string]string, int, error) {
	ctx := context.Background()
	shards, err := e.shards(ctx)
	if err != nil {
		return nil, 0, err
	}
	ends := map[string]string{}
	records := 0
	for id := range shards {
		it, err := e.kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(e.stream),
			ShardId: aws.String(id), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, 0, err
		}
		iterator := it.ShardIterator
		for iterator != nil {
			out, err := e.kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, 0, err
			}
			for _, r := range out.Records {
				ends[id] = aws.ToString(r.SequenceNumber)
				records++
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iterator = out.NextShardIterator
		}
	}
	return ends, records, nil
}

// warehouseRow is what a test reads back of one fact row.
type warehouseRow struct {
	line
	Shard, Sequence string
	LoadedAt        time.Time
}

// rows reads the warehouse: event id -> row.
func (e *env) rows() map[string]warehouseRow {
	e.t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT event_id, player_id, game_id, to_char(game_date, 'YYYY-MM-DD'),
		plate_appearances, at_bats, hits, home_runs, base_on_balls,
		coalesce(source_shard_id, ''), coalesce(source_sequence_number, ''), loaded_at
		FROM boxscore.fact_batting_game`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]warehouseRow{}
	for rows.Next() {
		var r warehouseRow
		if err := rows.Scan(&r.EventID, &r.PlayerID, &r.GameID, &r.Date, &r.PA, &r.AB, &r.H, &r.HR, &r.BB,
			&r.Shard, &r.Sequence, &r.LoadedAt); err != nil {
			e.t.Fatal(err)
		}
		out[r.EventID] = r
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// assertExactlyOnce checks the warehouse against what the gateway accepted: one row per
// accepted event, with its values, and nothing else; and, from the loader's own counts,
// that no row was ever committed twice (a replayed batch shows as "unchanged" rows) and no
// load was refused for a stale checkpoint or lease.
func (e *env) assertExactlyOnce(f *flow) map[string]warehouseRow {
	e.t.Helper()
	f.mu.Lock()
	accepted := make(map[string]line, len(f.accepted))
	for id, l := range f.accepted {
		accepted[id] = l
	}
	f.mu.Unlock()
	got := e.rows()
	missing, wrong := 0, 0
	for id, want := range accepted {
		r, ok := got[id]
		switch {
		case !ok:
			if missing++; missing <= 10 {
				e.t.Errorf("accepted event %s is not in the warehouse", id)
			}
		case r.line != want:
			if wrong++; wrong <= 10 {
				e.t.Errorf("row of %s:\n got %+v\nwant %+v", id, r.line, want)
			}
		}
	}
	for id := range got {
		if _, ok := accepted[id]; !ok {
			e.t.Errorf("row for event %s, never accepted", id)
		}
	}
	if missing+wrong > 0 {
		e.t.Errorf("%d of %d accepted events missing, %d wrong", missing, len(accepted), wrong)
	}
	m := e.scrape(stack.Loader)
	inserted := m.sum("boxscore_loader_rows_total", `outcome="inserted"`)
	unchanged := m.sum("boxscore_loader_rows_total", `outcome="unchanged"`)
	updated := m.sum("boxscore_loader_rows_total", `outcome="updated"`)
	if unchanged != 0 || updated != 0 || int(inserted) != len(accepted) {
		e.t.Errorf("loader committed %v inserted, %v updated, %v unchanged rows for %d distinct accepted events: a batch was committed twice",
			inserted, updated, unchanged, len(accepted))
	}
	e.t.Logf("warehouse: %d rows, exactly the %d accepted events; loader batches by outcome: %s",
		len(got), len(accepted), m.describe("boxscore_loader_batches_total"))
	return got
}

// metrics is a scraped Prometheus text exposition: one entry per sample line.
type metrics []string

func (e *env) scrape(name string) metrics {
	e.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(e.stack.AdminURL(name) + "/metrics")
	if err != nil {
		e.t.Fatalf("scrape %s: %v", name, err)
	}
	defer resp.Body.Close()
	var m metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			m = append(m, l)
		}
	}
	if err := sc.Err(); err != nil {
		e.t.Fatalf("scrape %s: %v", name, err)
	}
	return m
}

// samples returns the lines of metric name (exactly, labels aside) containing every label
// fragment given.
func (m metrics) samples(name string, labels ...string) []string {
	var out []string
	for _, l := range m {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		all := true
		for _, frag := range labels {
			all = all && strings.Contains(l, frag)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// sum adds the values of the matching samples.
func (m metrics) sum(name string, labels ...string) float64 {
	var total float64
	for _, l := range m.samples(name, labels...) {
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

func (m metrics) describe(name string) string {
	var parts []string
	for _, l := range m.samples(name) {
		if i := strings.IndexByte(l, '{'); i >= 0 {
			l = l[i:]
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, ", ")
}
