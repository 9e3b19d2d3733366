package group

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// Events flow as one POST of one game for every player, then this pause.
const (
	flowPlayers = 30
	flowPause   = 150 * time.Millisecond
)

// TestReplicasConvergeAndRebalance: three replicas spread 8 shards 3/3/2; two more join
// (2/2/2/1/1) and three leave on SIGTERM (4/4), all while events flow; the warehouse ends
// with every accepted event exactly once. The consumer's /metrics show the per-shard lag
// and the lease metrics.
func TestReplicasConvergeAndRebalance(t *testing.T) {
	e := newGroup(t, 3)
	f := startFlow(t, e.GatewayURL(), e.players(flowPlayers), flowPause)

	e.waitBalanced(60*time.Second, replicaNames(1, 3), []int{3, 3, 2})

	e.startReplica()
	e.startReplica()
	e.waitBalanced(60*time.Second, replicaNames(1, 5), []int{2, 2, 2, 1, 1})

	// Scale down to two: SIGTERM replicas 1, 3 and 5, one after the other, each exiting
	// cleanly after handing its shards back.
	for _, name := range []string{replicaNames(1, 1)[0], replicaNames(3, 3)[0], replicaNames(5, 5)[0]} {
		e.Stop(name, 30*time.Second)
	}
	live := []string{replicaNames(2, 2)[0], replicaNames(4, 4)[0]}
	e.waitBalanced(60*time.Second, live, []int{4, 4})

	time.Sleep(time.Second) // let the two commit a little while balanced
	f.finish()
	e.settle(f, 90*time.Second)
	e.assertExactlyOnce(f)

	// The group is observable: per-shard lag and the lease metrics on /metrics.
	m := e.Scrape(live[0])
	lag := m.Samples("boxscore_consumer_millis_behind_latest_milliseconds", "shard_id=")
	if len(lag) == 0 {
		t.Errorf("no per-shard millis_behind_latest gauge on %s's /metrics", live[0])
	}
	for _, name := range []string{"boxscore_lease_held", "boxscore_lease_takes_total"} {
		if len(m.Samples(name)) == 0 {
			t.Errorf("no %s on %s's /metrics", name, live[0])
		}
	}
	t.Logf("%s: lag gauges for %d shards; lease takes %v, steals %v, losses %v", live[0], len(lag), m.Sum("boxscore_lease_takes_total"),
		m.Sum("boxscore_lease_steals_total"), m.Sum("boxscore_lease_losses_total"))
}

// heldBy lists the shards whose lease owner is worker.
func (e *env) heldBy(worker string) []string {
	e.t.Helper()
	table, err := e.Leases(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for id, l := range table {
		if l.Owner == worker {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// resumedElsewhere reports whether every one of shards is leased to one of the live
// workers and has been committed by that worker after since (database time).
func (e *env) resumedElsewhere(shards []string, live []string, since time.Time) bool {
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
	for _, id := range shards {
		owner := table[id].Owner
		cp := cps[id]
		if !slices.Contains(live, owner) || cp.Consumer != owner || !cp.Updated.After(since) {
			return false
		}
	}
	return true
}

// threeReplicasFlowing starts three replicas, waits until they hold the shards 3/3/2, then
// starts the flow of events; it returns the flow and, for each replica, its name and
// worker id. (Starting the flow once balanced keeps the steals of the start-up out of the
// records read: a stolen shard's uncommitted records are read again by the thief.)
func threeReplicasFlowing(t *testing.T, players int) (*env, *flow, []string, []string) {
	e := newGroup(t, 3)
	names := replicaNames(1, 3)
	e.waitBalanced(60*time.Second, names, []int{3, 3, 2})
	f := startFlow(t, e.GatewayURL(), e.players(players), flowPause)
	ids := make([]string, len(names))
	for i, name := range names {
		ids[i] = e.workerID(name)
	}
	time.Sleep(time.Second) // committing under the balanced assignment
	return e, f, names, ids
}

// TestKilledReplicaIsTakenOver: one of three replicas is SIGKILLed (and not restarted)
// while events flow. The others take over every shard it held — after the lease failover
// time — and commit them again; the takeover time is measured, and the warehouse ends
// exactly once.
func TestKilledReplicaIsTakenOver(t *testing.T) {
	e, f, names, ids := threeReplicasFlowing(t, flowPlayers)
	victim, victimID := names[0], ids[0]
	held := e.heldBy(victimID)
	if len(held) == 0 {
		t.Fatalf("%s holds no lease", victim)
	}
	killedAt := e.Now()
	start := time.Now()
	e.Kill(victim)
	if p := e.Current(victim); p != nil {
		t.Fatalf("%s was restarted", victim)
	}
	e.WaitFor(60*time.Second, fmt.Sprintf("the shards %v of the killed %s committed by another replica", held, victim), func() bool {
		return e.resumedElsewhere(held, ids[1:], killedAt)
	})
	took := time.Since(start)
	t.Logf("takeover of %d shards after SIGKILL: %s (lease failover time %s)", len(held), took.Round(time.Millisecond), failoverTime)
	if took < failoverTime*2/3 {
		// Nothing released the leases: they can only have expired.
		t.Errorf("shards of a killed replica taken over after %s, before their leases could expire (failover %s)", took, failoverTime)
	}
	e.waitBalanced(60*time.Second, names[1:], []int{4, 4})

	f.finish()
	e.settle(f, 90*time.Second)
	e.assertExactlyOnce(f)
}

// TestTerminatedReplicaHandsOverWithoutDuplicates: one of three replicas gets SIGTERM while
// events flow. It commits what it holds and releases its leases before exiting (none is
// left in its name), the others resume its shards right after its last commits, and no
// record is committed — or even transformed — twice.
func TestTerminatedReplicaHandsOverWithoutDuplicates(t *testing.T) {
	e, f, names, ids := threeReplicasFlowing(t, flowPlayers)
	victim, victimID := names[0], ids[0]
	held := e.heldBy(victimID)
	if len(held) == 0 {
		t.Fatalf("%s holds no lease", victim)
	}
	stealsBefore := 0.0
	for _, name := range names[1:] {
		stealsBefore += e.Scrape(name).Sum("boxscore_lease_steals_total")
	}
	termAt := e.Now()
	start := time.Now()
	exit, ok := e.Terminate(victim, 30*time.Second)
	if !ok {
		t.Fatalf("%s was not running", victim)
	}
	if exit.Signal != syscall.SIGTERM || exit.Err != nil {
		t.Fatalf("%s after SIGTERM: %s\n%s", victim, exit, e.LogTail(victim, 20))
	}
	if still := e.heldBy(victimID); len(still) > 0 {
		t.Errorf("%s exited after SIGTERM still owning the leases of %v: they were not released", victim, still)
	}
	e.WaitFor(60*time.Second, fmt.Sprintf("the shards %v of %s committed by another replica", held, victim), func() bool {
		return e.resumedElsewhere(held, ids[1:], termAt)
	})
	took := time.Since(start)
	t.Logf("handover of %d shards: %s exited %s after SIGTERM; its shards committed again by others %s after SIGTERM",
		len(held), victim, exit.After.Round(time.Millisecond), took.Round(time.Millisecond))
	e.waitBalanced(60*time.Second, names[1:], []int{4, 4})

	f.finish()
	e.settle(f, 90*time.Second)
	e.assertExactlyOnce(f)

	// No record read twice: the transformer saw each record of the stream once.
	contents, err := e.ReadStream()
	if err != nil {
		t.Fatal(err)
	}
	records := contents.Count()
	transformed := e.Scrape(stack.Transformer).Sum("boxscore_transformer_records_total")
	if int(transformed) != records {
		t.Errorf("the transformer got %v records for %d in the stream: the handover made a replica read records again", transformed, records)
	}
	stealsAfter := 0.0
	for _, name := range names[1:] {
		stealsAfter += e.Scrape(name).Sum("boxscore_lease_steals_total")
	}
	if stealsAfter > stealsBefore {
		t.Errorf("the replicas left stole %v leases from each other after the handover: the released leases were not spread by takes alone", stealsAfter-stealsBefore)
	}
}
