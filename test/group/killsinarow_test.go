package group

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// TestKillsInARowRestartUnderTheSameIdentity: three consumer replicas at the default lease
// timings while events flow. Replicas 1 and 2 are supervised (restarted after SIGKILL
// under the same --consumer-id, as a pod's container is); replica 3 is not. Kills in a
// row: 1 then 2 a second later; then 1 again and, half a second later, 3, which never
// comes back. After each series every shard is committed again by a live replica (the
// time is logged, not asserted: `make chaos` measures it); a restarted replica took its
// shards back under greater tokens, and the warehouse holds those tokens (the dead
// process is fenced off); the warehouse ends with every accepted event exactly once.
func TestKillsInARowRestartUnderTheSameIdentity(t *testing.T) {
	// Default lease timings: only the shard sync is made quicker, as in every group test.
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: shardCount, Config: stack.Config{
		Env: map[string][]string{
			stack.Consumer: {"--shard-sync-interval", "1s"},
			stack.Gateway:  {"--publish-retry-budget", "5s"},
		}}})
	p.StartAll()
	e := &env{Pipeline: p, t: t, replicas: 1}
	for e.replicas < 3 {
		e.startReplica()
	}
	p.WaitSchema()
	names := replicaNames(1, 3)
	e.Supervise(names[0])
	e.Supervise(names[1])
	e.waitBalanced(60*time.Second, names, []int{3, 3, 2})
	for _, name := range names {
		if id := e.workerID(name); id != name {
			t.Fatalf("%s runs as %q: want its instance name, kept across restarts", name, id)
		}
	}
	f := startFlow(t, e.GatewayURL(), e.players(flowPlayers), flowPause)
	time.Sleep(time.Second) // committing under the balanced assignment

	var tookBackAll int
	series := []struct {
		what  string
		kills []string
		gaps  []time.Duration // before each kill but the first
		live  []string        // after the series
	}{
		{"replica 1, then replica 2 a second later (both restarted)", names[:2], []time.Duration{time.Second}, names},
		{"replica 1 (restarted), then replica 3 half a second later (never returns)", []string{names[0], names[2]}, []time.Duration{500 * time.Millisecond}, names[:2]},
	}
	for _, s := range series {
		before := map[string]map[string]int64{} // victim -> shard -> token it held
		var killedAt time.Time                  // database time of the last kill
		start := time.Now()
		var lastKill time.Time
		for i, victim := range s.kills {
			if i > 0 {
				time.Sleep(s.gaps[i-1])
			}
			before[victim] = e.tokensOf(victim)
			killedAt = e.Now()
			lastKill = time.Now()
			e.Kill(victim)
			t.Logf("SIGKILL %s holding %v", victim, before[victim])
		}
		// Every shard committed again after the last kill, by the replica that owns its
		// lease, a live one; a victim's shards under a newer token than it held.
		shards := e.shardIDs()
		e.WaitFor(90*time.Second, "every shard committed again by a live replica after: "+s.what, func() bool {
			return e.flowingAgain(shards, s.live, killedAt, before)
		})
		t.Logf("%s: every shard committed again %s after the first kill, %s after the last",
			s.what, time.Since(start).Round(time.Millisecond), time.Since(lastKill).Round(time.Millisecond))

		for victim, held := range before {
			if !slices.Contains(s.live, victim) {
				continue
			}
			if err := e.WaitReady(victim, 60*time.Second); err != nil {
				t.Fatalf("%s not restarted: %v", victim, err)
			}
			if id := e.workerID(victim); id != victim {
				t.Errorf("%s restarted as %q: want the same identity", victim, id)
			}
			// The restarted process holds again under greater tokens what it took back,
			// and its claim put that token in the warehouse: the dead process is fenced.
			now := e.tokensOf(victim)
			cps, err := e.Checkpoints(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			table, err := e.Leases(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			back := 0
			for shard, old := range held {
				token, ok := now[shard]
				if !ok {
					t.Logf("%s: %s went to %q meanwhile (its leases expired before the restart took them)", victim, shard, table[shard].Owner)
					continue
				}
				back++
				if token <= old {
					t.Errorf("%s holds %s again under token %d, not above %d before the kill", victim, shard, token, old)
				}
				if cp := cps[shard]; cp.Token < token || cp.Consumer != victim {
					t.Errorf("%s: the warehouse holds token %d of %q for %s, want %s's claim under %d", victim, cp.Token, cp.Consumer, shard, victim, token)
				}
			}
			t.Logf("%s restarted under its identity: took back %d of its %d shards, tokens %v -> %v", victim, back, len(held), held, now)
			if back == len(held) {
				tookBackAll++
			}
		}
	}
	if tookBackAll == 0 {
		t.Errorf("no restarted replica took all its shards back: the identity kept across restarts never helped")
	}

	e.waitBalanced(60*time.Second, names[:2], []int{4, 4})
	f.finish()
	e.settle(f, 90*time.Second)
	// Exactly once: the warehouse against the ledger, and no row committed twice (a replayed
	// batch shows as unchanged or updated rows). Not the helper's inserted == accepted: a
	// Load whose client is SIGKILLed while the loader commits can commit and yet be counted
	// "failed" without its rows (the loader's metrics, reported), though the rows are there.
	e.AssertExactlyOnce(f.led)
	m := e.Scrape(stack.Loader)
	if unchanged, updated := m.Sum("boxscore_loader_rows_total", `outcome="unchanged"`), m.Sum("boxscore_loader_rows_total", `outcome="updated"`); unchanged != 0 || updated != 0 {
		t.Errorf("loader committed %v updated and %v unchanged rows: a batch was committed twice", updated, unchanged)
	}
	t.Logf("loader rows inserted %v for %d accepted events; batches by outcome: %s", m.Sum("boxscore_loader_rows_total", `outcome="inserted"`),
		f.led.AcceptedCount(), m.Describe("boxscore_loader_batches_total"))
	for _, name := range names[:2] {
		t.Logf("%s: %d restarts; lease takes %v, steals %v, losses %v", name, e.Restarts(name),
			e.Scrape(name).Sum("boxscore_lease_takes_total"), e.Scrape(name).Sum("boxscore_lease_steals_total"),
			e.Scrape(name).Sum("boxscore_lease_losses_total"))
	}
}

// flowingAgain reports whether every shard's checkpoint was committed after since by the
// owner of its lease, a running replica among live, and, for the shards a killed replica
// held (before: victim -> shard -> token), under a token greater than the victim's: a
// new claim, not a Load the victim had on the wire when it died.
func (e *env) flowingAgain(shards, live []string, since time.Time, before map[string]map[string]int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	table, err := e.Leases(ctx)
	if err != nil {
		return false
	}
	cps, err := e.Checkpoints(ctx)
	if err != nil {
		return false
	}
	running := map[string]bool{}
	for _, name := range live {
		if p := e.Current(name); p != nil {
			running[p.ConsumerID] = true
		}
	}
	for _, id := range shards {
		owner, cp := table[id].Owner, cps[id]
		if !running[owner] || cp.Consumer != owner || !cp.Updated.After(since) {
			return false
		}
		for _, held := range before {
			if old, ok := held[id]; ok && cp.Token <= old {
				return false
			}
		}
	}
	return true
}

// tokensOf is what a running replica's GET /leases says it holds: shard -> token.
func (e *env) tokensOf(name string) map[string]int64 {
	e.t.Helper()
	a, err := e.Assignment(name)
	if err != nil {
		e.t.Fatalf("GET /leases of %s: %v", name, err)
	}
	out := map[string]int64{}
	for _, s := range a.Shards {
		out[s.ShardID] = s.Token
	}
	return out
}

// shardIDs lists the stream's open shards.
func (e *env) shardIDs() []string {
	e.t.Helper()
	open, err := e.openShards(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) != shardCount {
		e.t.Fatalf("%d open shards, want %d", len(ids), shardCount)
	}
	return ids
}
