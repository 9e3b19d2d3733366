package lease

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testFailover = 1500 * time.Millisecond
	testInterval = testFailover / 3
)

var errStoreDown = errors.New("lease store unreachable")

// unreachableStore is a real store behind a switch that cuts the worker off from it, as a
// network partition or a frozen process would.
type unreachableStore struct {
	Store
	down atomic.Bool
}

func (s *unreachableStore) Ensure(ctx context.Context, stream string, ids []string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.Store.Ensure(ctx, stream, ids)
}

func (s *unreachableStore) List(ctx context.Context, stream string) ([]Lease, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.List(ctx, stream)
}

func (s *unreachableStore) Take(ctx context.Context, stream, shardID, owner string, c int64) (int64, bool, error) {
	if s.down.Load() {
		return 0, false, errStoreDown
	}
	return s.Store.Take(ctx, stream, shardID, owner, c)
}

func (s *unreachableStore) Renew(ctx context.Context, stream, shardID, owner string, c int64) (int64, bool, error) {
	if s.down.Load() {
		return 0, false, errStoreDown
	}
	return s.Store.Renew(ctx, stream, shardID, owner, c)
}

func (s *unreachableStore) Release(ctx context.Context, stream, shardID, owner string, c int64) (bool, error) {
	if s.down.Load() {
		return false, errStoreDown
	}
	return s.Store.Release(ctx, stream, shardID, owner, c)
}

func (s *unreachableStore) Raise(ctx context.Context, stream, shardID, owner string, c, above int64) (int64, bool, error) {
	if s.down.Load() {
		return 0, false, errStoreDown
	}
	return s.Store.Raise(ctx, stream, shardID, owner, c, above)
}

// runningWorker is a Manager running in the background, with what its events said.
type runningWorker struct {
	id     string
	m      *Manager
	store  *unreachableStore
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	believed map[string]int64 // from Acquired/Lost events
	lost     int
}

func startWorker(t *testing.T, id string, store Store, shards []string) *runningWorker {
	t.Helper()
	w := &runningWorker{id: id, store: &unreachableStore{Store: store}, done: make(chan error, 1), believed: map[string]int64{}}
	m, err := NewManager(Config{Stream: "batting", WorkerID: id, FailoverTime: testFailover}, w.store, nil, nil, nil)
	if err != nil {
		t.Fatalf("manager %s: %v", id, err)
	}
	w.m = m
	m.SetShards(shards)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- m.Run(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-m.Events():
				w.mu.Lock()
				if ev.Kind == Acquired {
					w.believed[ev.ShardID] = ev.Token
				} else if w.believed[ev.ShardID] == ev.Token {
					delete(w.believed, ev.ShardID)
					w.lost++
				}
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { _ = w.stop() }) // tests that care about Run's error call stop themselves
	return w
}

// stop ends Run (releasing the leases) and returns its error.
func (w *runningWorker) stop() error {
	w.cancel()
	err, ok := <-w.done
	if ok {
		close(w.done)
	}
	return err
}

func shardIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("shardId-%012d", i)
	}
	return ids
}

// waitFor polls cond until it holds or the deadline passes, and returns how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s; last state: %s", what, within, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// balanced reports whether the workers hold every shard exactly once, with these loads,
// and whether the table agrees with what each holds.
func balanced(t *testing.T, store Store, shards []string, workers []*runningWorker, wantLoads []int) (bool, string) {
	owner := map[string]string{}
	var loads []int
	state := ""
	for _, w := range workers {
		held := w.m.Held()
		loads = append(loads, len(held))
		state += fmt.Sprintf("%s=%d ", w.id, len(held))
		for id := range held {
			if prev, dup := owner[id]; dup {
				return false, fmt.Sprintf("%s held by %s and %s", id, prev, w.id)
			}
			owner[id] = w.id
		}
	}
	slices.Sort(loads)
	want := slices.Clone(wantLoads)
	slices.Sort(want)
	if len(owner) != len(shards) || !slices.Equal(loads, want) {
		return false, state
	}
	leases, err := store.List(context.Background(), "batting")
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for _, l := range leases {
		if owner[l.ShardID] != l.Owner {
			return false, fmt.Sprintf("table says %s is %q's, workers say %q's", l.ShardID, l.Owner, owner[l.ShardID])
		}
	}
	return true, state
}

func TestManagersBalanceAndAbsorbNewWorkers(t *testing.T) {
	t.Parallel()
	store, _ := newPostgresStore(t)
	shards := shardIDs(8)
	var workers []*runningWorker
	for i := range 3 {
		workers = append(workers, startWorker(t, fmt.Sprintf("worker-%d", i), store, shards))
	}
	took := waitFor(t, 10*testFailover, "3 workers converge to 3/3/2", func() (bool, string) {
		return balanced(t, store, shards, workers, []int{3, 3, 2})
	})
	t.Logf("3/3/2 after %s", took)

	// Events and Held agree, and the tokens are the table's counters right after the take.
	for _, w := range workers {
		w.mu.Lock()
		if held := w.m.Held(); !maps.Equal(held, w.believed) {
			t.Errorf("%s: Held %v, events say %v", w.id, held, w.believed)
		}
		w.mu.Unlock()
	}

	for i := 3; i < 5; i++ {
		workers = append(workers, startWorker(t, fmt.Sprintf("worker-%d", i), store, shards))
	}
	took = waitFor(t, 10*testFailover, "5 workers converge to 2/2/2/1/1", func() (bool, string) {
		return balanced(t, store, shards, workers, []int{2, 2, 2, 1, 1})
	})
	t.Logf("2/2/2/1/1 after %s", took)
	// Stable: nothing moves once balanced.
	time.Sleep(3 * testInterval)
	if ok, state := balanced(t, store, shards, workers, []int{2, 2, 2, 1, 1}); !ok {
		t.Fatalf("balance did not hold: %s", state)
	}
}

func TestManagersFailOver(t *testing.T) {
	t.Parallel()
	store, _ := newPostgresStore(t)
	shards := shardIDs(8)
	workers := []*runningWorker{
		startWorker(t, "worker-a", store, shards),
		startWorker(t, "worker-b", store, shards),
		startWorker(t, "worker-c", store, shards),
	}
	waitFor(t, 10*testFailover, "3 workers converge to 3/3/2", func() (bool, string) {
		return balanced(t, store, shards, workers, []int{3, 3, 2})
	})

	// Graceful stop: the leases are released and taken by the others on their next cycle,
	// long before the failover time.
	stopped := workers[2]
	stoppedHeld := stopped.m.Held()
	if err := stopped.stop(); err != nil {
		t.Fatalf("stop %s: %v", stopped.id, err)
	}
	leases, err := store.List(t.Context(), "batting")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, l := range leases {
		if _, was := stoppedHeld[l.ShardID]; was && l.Owner == stopped.id {
			t.Fatalf("%s still owned by the stopped worker after Run returned", l.ShardID)
		}
	}
	workers = workers[:2]
	took := waitFor(t, 2*testInterval+testInterval/2, "released leases taken by the others", func() (bool, string) {
		return balanced(t, store, shards, workers, []int{4, 4})
	})
	t.Logf("released leases taken after %s (take interval %s)", took, testInterval)

	// Kill: the worker stops renewing without releasing. It gives its leases up on its own
	// clock after 2/3 of the failover time, and the other worker takes them after the
	// failover time, not before.
	killed, survivor := workers[1], workers[0]
	killedHeld := killed.m.Held()
	killed.store.down.Store(true)
	killedAt := time.Now()
	waitFor(t, testFailover, "the cut-off worker reports its leases lost", func() (bool, string) {
		killed.mu.Lock()
		defer killed.mu.Unlock()
		return len(killed.m.Held()) == 0 && len(killed.believed) == 0, fmt.Sprintf("held %v, believed %v", killed.m.Held(), killed.believed)
	})
	selfLost := time.Since(killedAt)
	if selfLost > testFailover*2/3+50*time.Millisecond {
		t.Errorf("cut-off worker gave its leases up after %s, want at most 2/3 of %s", selfLost, testFailover)
	}
	var firstTake time.Duration
	waitFor(t, testFailover+3*testInterval, "the survivor takes the killed worker's leases", func() (bool, string) {
		held := survivor.m.Held()
		taken := 0
		for id := range killedHeld {
			if _, ok := held[id]; ok {
				taken++
			}
		}
		if taken > 0 && firstTake == 0 {
			firstTake = time.Since(killedAt)
		}
		return len(held) == len(shards), fmt.Sprintf("survivor holds %d", len(held))
	})
	// The killed worker's last renewal was at most one renew interval before the cut.
	if firstTake < testFailover-testInterval {
		t.Fatalf("first lease of the killed worker taken %s after the cut, before the failover time %s allows", firstTake, testFailover)
	}
	if selfLost >= firstTake {
		t.Fatalf("the killed worker still believed in its leases (%s) when the first was taken (%s)", selfLost, firstTake)
	}
	t.Logf("killed worker: gave up after %s, first lease taken after %s", selfLost, firstTake)
	if err := killed.stop(); !errors.Is(err, errStoreDown) && err != nil {
		t.Fatalf("stop killed worker: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Stream: "s", WorkerID: "w"}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := []Config{
		{WorkerID: "w"},
		{Stream: "s"},
		{Stream: "s", WorkerID: "w", FailoverTime: 3 * time.Second, RenewInterval: 2 * time.Second},
		{Stream: "s", WorkerID: "w", TakeInterval: -time.Second},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", c)
		}
		if _, err := NewManager(c, NewMemoryStore(), nil, nil, nil); err == nil {
			t.Errorf("NewManager(%+v) accepted it", c)
		}
	}
}

// TestManagerGivesUpLeasesOnItsOwnClock drives Run on a fake clock: cut off from the store,
// the manager stops reporting its leases the instant 2/3 of the failover time has passed
// since its last renewal was sent, and its watchdog reports them Lost.
func TestManagerGivesUpLeasesOnItsOwnClock(t *testing.T) {
	clock := NewFakeClock(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))
	store := &unreachableStore{Store: NewMemoryStore()}
	m, err := NewManager(Config{Stream: "batting", WorkerID: "worker-a", FailoverTime: 9 * time.Second}, store, clock, nil, nil)
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	shards := shardIDs(3)
	m.SetShards(shards)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	next := func(what string) Event {
		t.Helper()
		select {
		case ev := <-m.Events():
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no event: %s", what)
			return Event{}
		}
	}
	// The first take cycle runs at once: every shard is unowned.
	tokens := map[string]int64{}
	for range shards {
		ev := next("acquired")
		if ev.Kind != Acquired || ev.Token != 1 {
			t.Fatalf("event %+v, want acquired with token 1", ev)
		}
		tokens[ev.ShardID] = ev.Token
	}
	if !maps.Equal(m.Held(), tokens) {
		t.Fatalf("Held %v, want %v", m.Held(), tokens)
	}

	store.down.Store(true)
	// Just before the limit the leases still count as held; at it, they do not, whether
	// or not a goroutine has run since.
	clock.Advance(6*time.Second - time.Nanosecond)
	if len(m.Held()) != 3 || !m.Holds(shards[0], 1) {
		t.Fatalf("leases dropped before 2/3 of the failover time: %v", m.Held())
	}
	clock.Advance(time.Nanosecond)
	if len(m.Held()) != 0 || m.Holds(shards[0], 1) {
		t.Fatalf("leases still reported at 2/3 of the failover time: %v", m.Held())
	}
	// The watchdog reports them; should its goroutine have armed its timer only after the
	// advance, moving the clock on wakes it (the leases are long gone by then anyway).
	nextLost := func() Event {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			select {
			case ev := <-m.Events():
				return ev
			case <-time.After(10 * time.Millisecond):
				clock.Advance(100 * time.Millisecond)
			}
		}
		t.Fatal("no lost event")
		return Event{}
	}
	lost := map[string]bool{}
	for range shards {
		ev := nextLost()
		if ev.Kind != Lost || ev.Token != 1 {
			t.Fatalf("event %+v, want lost with token 1", ev)
		}
		lost[ev.ShardID] = true
	}
	if len(lost) != 3 {
		t.Fatalf("lost %v, want all three shards", lost)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v (nothing held, nothing to release)", err)
	}
}

// fakeClockWorker runs a manager of worker id on a fake clock, with a helper that moves
// the clock on until the next event comes.
func fakeClockWorker(t *testing.T, id string, store Store, shards []string) (*Manager, func(what string) Event) {
	t.Helper()
	clock := NewFakeClock(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))
	m, err := NewManager(Config{Stream: "batting", WorkerID: id, FailoverTime: 9 * time.Second}, store, clock, nil, nil)
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	m.SetShards(shards)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("Run: %v", err)
		}
	})
	next := func(what string) Event {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case ev := <-m.Events():
				return ev
			case <-time.After(10 * time.Millisecond):
				clock.Advance(100 * time.Millisecond)
			}
		}
		t.Fatalf("no event: %s", what)
		return Event{}
	}
	return m, next
}

// TestManagerRaisesTokenAboveTheWarehouse: after a lease store reset the counter restarts
// below the token the warehouse holds; RaiseToken lifts the held lease's token above it
// with a conditional update (a new unique token, reported Lost under the old token then
// Acquired under the new one), and later takes start above the raised token. A worker
// that no longer holds the lease cannot raise it.
func TestManagerRaisesTokenAboveTheWarehouse(t *testing.T) {
	store := NewMemoryStore()
	shard := shardIDs(1)[0]
	m, next := fakeClockWorker(t, "worker-a", store, []string{shard})
	if ev := next("acquired"); ev.Kind != Acquired || ev.Token != 1 {
		t.Fatalf("event %+v, want acquired with token 1", ev)
	}

	// The warehouse holds token 57 from before the reset.
	if _, err := m.RaiseToken(t.Context(), shard, 2, 57); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("raise under a token not held: %v, want ErrNotHeld", err)
	}
	token, err := m.RaiseToken(t.Context(), shard, 1, 57)
	if err != nil {
		t.Fatalf("raise: %v", err)
	}
	leases, _ := store.List(t.Context(), "batting")
	if token <= 57 || len(leases) != 1 || leases[0].Owner != "worker-a" || leases[0].Counter != token {
		t.Fatalf("raised token %d, store %+v: want a token above 57 that is the lease's counter", token, leases)
	}
	if ev := next("lost under the old token"); ev != (Event{Kind: Lost, ShardID: shard, Token: 1}) {
		t.Fatalf("event %+v, want lost under token 1", ev)
	}
	if ev := next("acquired under the new token"); ev != (Event{Kind: Acquired, ShardID: shard, Token: token}) {
		t.Fatalf("event %+v, want acquired under token %d", ev, token)
	}
	if !m.Holds(shard, token) || m.Holds(shard, 1) {
		t.Fatalf("Held %v after the raise, want only token %d", m.Held(), token)
	}
	// The old token cannot be raised again; raising the new one grows it further.
	if _, err := m.RaiseToken(t.Context(), shard, 1, 57); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("second raise under the old token: %v, want ErrNotHeld", err)
	}

	// Another worker takes the lease (at the counter it saw): it gets a token above the
	// raised one, and the former holder can no longer raise.
	leases, _ = store.List(t.Context(), "batting")
	stolen, ok, err := store.Take(t.Context(), "batting", shard, "worker-b", leases[0].Counter)
	if err != nil || !ok || stolen <= token {
		t.Fatalf("take by worker-b = (%d, %v, %v), want a token above %d", stolen, ok, err, token)
	}
	if _, err := m.RaiseToken(t.Context(), shard, token, stolen+100); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("raise after the lease was taken: %v, want ErrNotOwner", err)
	}
	if ev := next("lost after the refused raise"); ev != (Event{Kind: Lost, ShardID: shard, Token: token}) {
		t.Fatalf("event %+v, want lost under token %d", ev, token)
	}
	leases, _ = store.List(t.Context(), "batting")
	if leases[0].Owner != "worker-b" || leases[0].Counter != stolen {
		t.Fatalf("store after the refused raise %+v, want worker-b's at %d", leases[0], stolen)
	}
}

// TestManagerGivesUpAndRecreatesDeletedLeases: GiveUp releases a lease only under the
// token named; and when the lease rows are deleted (a lease store reset) the worker loses
// its leases and creates and takes them again.
func TestManagerGivesUpAndRecreatesDeletedLeases(t *testing.T) {
	store := NewMemoryStore()
	shards := shardIDs(2)
	m, next := fakeClockWorker(t, "worker-a", store, shards)
	for range shards {
		if ev := next("acquired"); ev.Kind != Acquired || ev.Token != 1 {
			t.Fatalf("event %+v, want acquired with token 1", ev)
		}
	}

	if err := m.GiveUp(t.Context(), shards[0], 7, "test"); err != nil || !m.Holds(shards[0], 1) {
		t.Fatalf("give up under another token: %v, held %v; want nothing released", err, m.Held())
	}
	if err := m.GiveUp(t.Context(), shards[0], 1, "test"); err != nil {
		t.Fatalf("give up: %v", err)
	}
	if m.Holds(shards[0], 1) {
		t.Fatalf("Held %v after giving %s up", m.Held(), shards[0])
	}
	leases, _ := store.List(t.Context(), "batting")
	if leases[0].Owner != "" || leases[0].Counter < 2 {
		t.Fatalf("lease given up %+v, want unowned", leases[0])
	}
	// Unowned and still wanted: taken again (no Lost for a lease given up).
	retaken := leases[0].Counter + 1
	if ev := next("taken again"); ev != (Event{Kind: Acquired, ShardID: shards[0], Token: retaken}) {
		t.Fatalf("event %+v, want %s acquired under token %d", ev, shards[0], retaken)
	}

	// The lease rows vanish: renewals are refused, the leases lost, the rows created again
	// and taken again, from counter 0.
	store.mu.Lock()
	delete(store.streams, "batting")
	store.mu.Unlock()
	got := map[string][]Event{}
	for range 4 {
		ev := next("lost, then acquired again")
		got[ev.ShardID] = append(got[ev.ShardID], ev)
	}
	want := map[string][]Event{
		shards[0]: {{Kind: Lost, ShardID: shards[0], Token: retaken}, {Kind: Acquired, ShardID: shards[0], Token: 1}},
		shards[1]: {{Kind: Lost, ShardID: shards[1], Token: 1}, {Kind: Acquired, ShardID: shards[1], Token: 1}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events after the rows were deleted %v, want %v", got, want)
	}
}
