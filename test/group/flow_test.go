// Package group tests the shard-consumer's consumer group on real processes: several
// consumer replicas sharing the shards of a kinesalite stream through leases in PostgreSQL,
// while events flow through the gateway, the transformer and the loader. It checks
// balancing, scaling, failover, graceful handover, resharding and a blocked warehouse, and
// after each that the warehouse holds every accepted event exactly once.
package group

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// Every test runs the group on a stream of this many shards.
const shardCount = 8

// failoverTime is the consumers' --lease-failover-time: short, so failover tests take
// seconds.
const failoverTime = 3 * time.Second

// flow sends one game of every player per POST, one POST after the other, until stopped:
// each player's games reach the gateway — and so its shard — in game order.
type flow struct {
	t       *testing.T
	led     *stack.Ledger
	players []int64
	stop    chan struct{}
	done    chan error
	stopFn  func() error
}

// startFlow starts sending games of players through the gateway at url, a POST every
// pause.
func startFlow(t *testing.T, url string, players []int64, pause time.Duration) *flow {
	f := &flow{t: t, led: stack.NewLedger(), players: players, stop: make(chan struct{}), done: make(chan error, 1)}
	producer := stack.NewProducer(url, f.led)
	go func() { f.done <- f.run(producer, pause) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			close(f.stop)
			if err := <-f.done; err != nil {
				t.Logf("producer, never finished: %v", err)
			}
		}
	})
	f.stopFn = func() error {
		stopped = true
		close(f.stop)
		return <-f.done
	}
	return f
}

func (f *flow) run(producer *stack.Producer, pause time.Duration) error {
	rng := rand.New(rand.NewPCG(uint64(len(f.players)), 5))
	for g := 0; ; g++ {
		select {
		case <-f.stop:
			return nil
		default:
		}
		date := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g%180).Format("2006-01-02")
		batch := make([]stack.Line, len(f.players))
		for i, p := range f.players {
			batch[i] = stack.RandomLine(rng, "group", p, fmt.Sprintf("G%05d", g), date, 1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		a, err := producer.Deliver(ctx, batch, stack.PostOptions{})
		cancel()
		if err != nil {
			return err
		}
		if a.Status != 202 {
			return fmt.Errorf("gateway refused a consistent batch: %d %.500s", a.Status, a.Body)
		}
		select {
		case <-f.stop:
			return nil
		case <-time.After(pause):
		}
	}
}

// finish stops the flow after the POST in progress and fails the test if it failed.
func (f *flow) finish() {
	f.t.Helper()
	if err := f.stopFn(); err != nil {
		f.t.Fatalf("producer: %v", err)
	}
	posts, retries := f.led.Posts()
	f.t.Logf("producer: %d events accepted in %d POSTs, %d of them retries", f.led.AcceptedCount(), posts, retries)
}

// env is one test's pipeline with its consumer replicas.
type env struct {
	*stack.Pipeline
	t *testing.T
	// replicas is how many consumer replicas were started (1..replicas).
	replicas int
}

// newGroup starts the pipeline with consumer replicas 1..replicas on a stream of
// shardCount shards and waits for the warehouse schema.
func newGroup(t *testing.T, replicas int) *env {
	t.Helper()
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: shardCount, Config: stack.Config{
		Env: map[string][]string{
			stack.Consumer: {"--lease-failover-time", failoverTime.String(), "--shard-sync-interval", "1s"},
			stack.Gateway:  {"--publish-retry-budget", "5s"},
		}}})
	p.StartAll()
	e := &env{Pipeline: p, t: t, replicas: 1}
	for e.replicas < replicas {
		e.startReplica()
	}
	p.WaitSchema()
	return e
}

// players are n players spread over every shard of the stream.
func (e *env) players(n int) []int64 {
	ids := stack.PlayersOverShards(e.t, e.Kinesis, e.Stream, 100000, (n+shardCount-1)/shardCount)
	return ids[:n]
}

// replicaNames are the instance names of consumer replicas from..to.
func replicaNames(from, to int) []string {
	var names []string
	for n := from; n <= to; n++ {
		names = append(names, stack.InstanceName(stack.Consumer, n))
	}
	return names
}

// startReplica starts the next consumer replica and returns its instance name.
func (e *env) startReplica() string {
	e.t.Helper()
	e.replicas++
	return e.StartReplica(stack.Consumer, e.replicas)
}

// workerID is the consumer id (lease owner) of a running replica.
func (e *env) workerID(name string) string {
	e.t.Helper()
	p := e.Current(name)
	if p == nil {
		e.t.Fatalf("%s is not running", name)
	}
	return p.ConsumerID
}

// openShards lists the stream's open shards by id.
func (e *env) openShards(ctx context.Context) (map[string]types.Shard, error) {
	all, err := streamtest.Shards(ctx, e.Kinesis, e.Stream)
	if err != nil {
		return nil, err
	}
	open := map[string]types.Shard{}
	for _, s := range all {
		if sh := (streamtest.Shard{Shard: s}); sh.Open() {
			open[sh.ID()] = s
		}
	}
	return open, nil
}

// balanced reports whether the open shards' leases are spread over exactly the live
// replicas with the given loads (in any order), in the lease table and in every replica's
// GET /leases alike, each replica reading every shard it holds. It returns a description
// of the spread for messages.
func (e *env) balanced(live []string, want []int) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	table, err := e.Leases(ctx)
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
		p := e.Current(name)
		if p == nil {
			return false, name + " is down"
		}
		mine := byOwner[p.ConsumerID]
		sort.Strings(mine)
		loads = append(loads, len(mine))
		a, err := e.Assignment(name)
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
	took := e.WaitFor(timeout, fmt.Sprintf("leases balanced %v", want), func() bool {
		ok, desc := e.balanced(live, want)
		last = desc
		return ok
	})
	e.t.Logf("balanced %v after %s: %s", want, took.Round(time.Millisecond), last)
	return took
}

// settle waits until the warehouse holds as many rows as events were accepted (each
// accepted event is a distinct player and game) and every shard's checkpoint is at the
// shard's last record.
func (e *env) settle(f *flow, timeout time.Duration) {
	e.t.Helper()
	e.WaitRows(f.led.AcceptedCount(), timeout)
	e.Settle(timeout)
}

// assertExactlyOnce checks the warehouse against what the gateway accepted (one row per
// accepted event, with its values, and nothing else) and, from the loader's own counts,
// that no row was ever committed twice (a replayed batch shows as "unchanged" rows); it
// returns the rows by event id. Inserted rows may count fewer than accepted events: a
// consumer killed while the loader commits its Load cancels the call, and a commit whose
// answer was lost that way is counted "failed" though it landed (the warehouse check
// above is what proves every event is there once).
func (e *env) assertExactlyOnce(f *flow) map[string]stack.Row {
	e.t.Helper()
	rows := e.AssertExactlyOnce(f.led)
	accepted := f.led.AcceptedCount()
	m := e.Scrape(stack.Loader)
	inserted := m.Sum("boxscore_loader_rows_total", `outcome="inserted"`)
	unchanged := m.Sum("boxscore_loader_rows_total", `outcome="unchanged"`)
	updated := m.Sum("boxscore_loader_rows_total", `outcome="updated"`)
	if unchanged != 0 || updated != 0 || int(inserted) > accepted {
		e.t.Errorf("loader committed %v inserted, %v updated, %v unchanged rows for %d distinct accepted events: a batch was committed twice",
			inserted, updated, unchanged, accepted)
	}
	e.t.Logf("loader batches by outcome: %s", m.Describe("boxscore_loader_batches_total"))
	return rows
}
