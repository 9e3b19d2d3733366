package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// The simulation runs many managers against one MemoryStore on skewed fake clocks, with
// pauses (a paused worker runs no code, sometimes right after a store call and before it
// reads the reply), store partitions, lost replies, crashes, graceful leaves and joins. It
// models the warehouse's fence: a reader claims the shard with its token on Acquired, and
// a commit is accepted only while its token is the one last claimed.
//
// The simulation is deterministic: one goroutine runs at a time (each worker step runs in
// a goroutine only so that it can be suspended in the middle of a store call), and every
// random choice comes from one seeded generator.

const (
	simFailover = 10 * time.Second
	simTick     = 50 * time.Millisecond
)

type simConfig struct {
	seed       uint64
	workers    int     // at the start
	maxWorkers int     // joins stop here
	shards     int     //
	skew       float64 // clock rates in [1-skew, 1+skew]
	// slowRate, when set, is the clock rate of the first worker, beyond what the 2/3 rule
	// tolerates: expired-lease overlaps then happen and only the fence keeps commits right.
	slowRate float64
	chaos    time.Duration // random events happen during this time
	quiet    time.Duration // then nothing happens for this long
	// failover is the managers' FailoverTime (their other intervals are the defaults);
	// simFailover when zero.
	failover time.Duration
	// script, when set, runs at every tick before the workers' steps: scripted kills and
	// restarts instead of (or beside) the random chaos.
	script func()
}

type sim struct {
	t     *testing.T
	cfg   simConfig
	rng   *rand.Rand
	now   time.Duration // real time since the start
	store *MemoryStore
	ids   []string
	ws    []*simWorker
	byID  map[string]*simWorker

	// The warehouse fence and what the lease layer handed out.
	claimed    map[string]int64            // highest token claimed per shard
	issued     map[string]int64            // highest token handed out per shard
	tokenOwner map[string]map[int64]string // who got each token

	stats simStats
}

type simStats struct {
	takes, steals, expiryTakes, expiryOverlaps int
	commits, staleRefused, staleClaims         int
	overlapTicks                               int
	maxOverlap, maxGap                         time.Duration
	crashes, leaves, joins, pauses, parks      int
}

type simWorker struct {
	id     string
	sim    *sim
	m      *Manager
	clock  *FakeClock
	rate   float64
	offset time.Duration

	crashed, left    bool
	pausedUntil      time.Duration // runs no code before this (real time)
	partitionedUntil time.Duration // the store is unreachable before this

	// A step suspended inside a store call.
	parked      bool
	parkedUntil time.Duration
	unparkedAt  time.Duration // when the last suspension ended
	parkCh      chan time.Duration
	resume      chan bool // true: the worker crashed meanwhile
	stepDone    chan struct{}
	afterStep   func()

	nextRenew, nextTake time.Time // on the worker's clock
	renewFailed         bool
	claims              map[string]int64 // shards its readers claimed, with their tokens
	believedAtTake      map[string]bool  // did the previous owner believe in it when it was taken
}

var errCrashed = errors.New("worker crashed")

func (w *simWorker) running() bool {
	return !w.crashed && !w.left && !w.parked && w.sim.now >= w.pausedUntil
}

func (w *simWorker) alive() bool { return !w.crashed && !w.left }

// healthy: alive, running and able to reach the store.
func (w *simWorker) healthy() bool { return w.running() && w.sim.now >= w.partitionedUntil }

// mayDisturb reports whether one more worker may be paused, suspended or partitioned:
// the liveness bound needs workers that stay up to take over.
func (s *sim) mayDisturb() bool {
	healthy := 0
	for _, w := range s.ws {
		if w.healthy() {
			healthy++
		}
	}
	return healthy > 3
}

// simStore is one worker's view of the shared store: partitions, lost replies, and pauses
// between a call's effect and the worker reading its reply.
type simStore struct{ w *simWorker }

func (s simStore) do(op func() error) error {
	w, sm := s.w, s.w.sim
	if w.crashed {
		return errCrashed
	}
	if sm.now < w.partitionedUntil {
		return errStoreDown
	}
	err := op()
	if sm.now >= sm.cfg.chaos {
		return err
	}
	lostReply := sm.rng.Float64() < 0.01
	// A suspension starts only well after the worker's last one ended: suspensions in a
	// row, each resumed long enough to renew, would keep a worker holding shards it barely
	// serves, which no lease timing bounds.
	if sm.rng.Float64() < 0.01 && sm.mayDisturb() && sm.now >= w.unparkedAt+2*simFailover {
		sm.stats.parks++
		w.parkCh <- sm.now + time.Duration(sm.rng.Int64N(int64(simFailover)))
		if crashed := <-w.resume; crashed {
			return errCrashed
		}
	}
	if lostReply {
		return errors.New("reply lost")
	}
	return err
}

func (s simStore) Ensure(ctx context.Context, stream string, ids []string) error {
	return s.do(func() error { return s.w.sim.store.Ensure(ctx, stream, ids) })
}

func (s simStore) List(ctx context.Context, stream string) (out []Lease, err error) {
	err = s.do(func() error { out, err = s.w.sim.store.List(ctx, stream); return err })
	return out, err
}

func (s simStore) Take(ctx context.Context, stream, shardID, owner string, c int64) (n int64, ok bool, err error) {
	err = s.do(func() error {
		previous := s.w.sim.ownerOf(shardID)
		n, ok, err = s.w.sim.store.Take(ctx, stream, shardID, owner, c)
		if ok {
			s.w.sim.committedTake(s.w, shardID, previous, n)
		}
		return err
	})
	return n, ok && err == nil, err
}

func (s simStore) Renew(ctx context.Context, stream, shardID, owner string, c int64) (n int64, ok bool, err error) {
	err = s.do(func() error { n, ok, err = s.w.sim.store.Renew(ctx, stream, shardID, owner, c); return err })
	return n, ok && err == nil, err
}

func (s simStore) Release(ctx context.Context, stream, shardID, owner string, c int64) (ok bool, err error) {
	err = s.do(func() error { ok, err = s.w.sim.store.Release(ctx, stream, shardID, owner, c); return err })
	return ok && err == nil, err
}

func (s simStore) Raise(ctx context.Context, stream, shardID, owner string, c, above int64) (n int64, ok bool, err error) {
	err = s.do(func() error { n, ok, err = s.w.sim.store.Raise(ctx, stream, shardID, owner, c, above); return err })
	return n, ok && err == nil, err
}

func newSim(t *testing.T, cfg simConfig) *sim {
	s := &sim{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 0x5eed)), store: NewMemoryStore(),
		byID: map[string]*simWorker{}, claimed: map[string]int64{}, issued: map[string]int64{},
		tokenOwner: map[string]map[int64]string{}}
	s.ids = shardIDs(cfg.shards)
	for i := range cfg.workers {
		rate := 0.0
		if i == 0 && cfg.slowRate > 0 {
			rate = cfg.slowRate
		}
		s.join(rate)
	}
	return s
}

func (s *sim) join(rate float64) *simWorker {
	return s.joinAs(fmt.Sprintf("worker-%02d", len(s.ws)), rate)
}

// joinAs starts a worker under id: a new one, or a crashed one's identity (a container
// restarted in its pod). rate 0 draws one within the skew.
func (s *sim) joinAs(id string, rate float64) *simWorker {
	if rate == 0 {
		rate = 1 - s.cfg.skew + 2*s.cfg.skew*s.rng.Float64()
	}
	failover := s.cfg.failover
	if failover == 0 {
		failover = simFailover
	}
	w := &simWorker{id: id, sim: s, rate: rate,
		offset: time.Duration(s.rng.Int64N(int64(2*time.Hour))) - time.Hour,
		parkCh: make(chan time.Duration), resume: make(chan bool), claims: map[string]int64{}}
	// Real time zero is the same instant for everyone; each clock starts elsewhere.
	w.clock = NewFakeClock(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC).Add(w.offset + time.Duration(rate*float64(s.now))))
	m, err := NewManager(Config{Stream: "batting", WorkerID: w.id, FailoverTime: failover}, simStore{w}, w.clock, nil, nil)
	if err != nil {
		s.t.Fatalf("manager: %v", err)
	}
	m.onTake = func(shardID, previous string, _ int64, stolen bool) { s.taken(w, shardID, previous, stolen) }
	m.SetShards(s.ids)
	w.m = m
	w.nextRenew = w.clock.Now().Add(m.cfg.RenewInterval)
	w.nextTake = w.clock.Now()
	s.ws = append(s.ws, w)
	s.byID[w.id] = w
	s.stats.joins++
	return w
}

func (s *sim) ownerOf(shardID string) string {
	leases, _ := s.store.List(context.Background(), "batting") // MemoryStore.List never fails
	for _, l := range leases {
		if l.ShardID == shardID {
			return l.Owner
		}
	}
	return ""
}

// committedTake runs at the instant a take committed in the store, before the taker
// reads the reply (it may be suspended, or crash, before it does).
func (s *sim) committedTake(w *simWorker, shardID, previous string, token int64) {
	s.stats.takes++
	if token <= s.issued[shardID] {
		s.t.Errorf("t=%s: %s took %s with token %d, not above %d handed out before", s.now, w.id, shardID, token, s.issued[shardID])
	}
	s.issued[shardID] = token
	if s.tokenOwner[shardID] == nil {
		s.tokenOwner[shardID] = map[int64]string{}
	}
	s.tokenOwner[shardID][token] = w.id
	if w.believedAtTake == nil {
		w.believedAtTake = map[string]bool{}
	}
	w.believedAtTake[shardID] = false
	if pw := s.byID[previous]; pw != nil && pw != w && !pw.crashed {
		_, w.believedAtTake[shardID] = pw.m.Held()[shardID]
	}
}

// taken runs when the taker reads the reply of a take: stolen or taken as expired.
func (s *sim) taken(w *simWorker, shardID, previous string, stolen bool) {
	if stolen {
		s.stats.steals++
		return
	}
	if previous == "" || previous == w.id {
		return
	}
	s.stats.expiryTakes++
	if w.believedAtTake[shardID] {
		// Taken as expired while its owner still believed in it.
		s.stats.expiryOverlaps++
		if s.cfg.slowRate == 0 {
			s.t.Errorf("t=%s: %s took %s as expired while %s still believed it held it", s.now, w.id, shardID, previous)
		}
	}
}

// runStep runs f as a step of w: until it returns or suspends in a store call.
func (s *sim) runStep(w *simWorker, f func(), after func()) {
	done := make(chan struct{})
	w.afterStep = after
	go func() {
		defer close(done)
		f()
	}()
	s.await(w, done)
}

func (s *sim) await(w *simWorker, done chan struct{}) {
	select {
	case <-done:
		w.parked, w.stepDone = false, nil
		if after := w.afterStep; after != nil {
			w.afterStep = nil
			after()
		}
	case until := <-w.parkCh:
		w.parked, w.parkedUntil, w.stepDone = true, until, done
	}
}

func (s *sim) setClocks() {
	for _, w := range s.ws {
		target := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC).Add(w.offset + time.Duration(w.rate*float64(s.now)))
		w.clock.Advance(target.Sub(w.clock.Now()))
	}
}

func (s *sim) live() []*simWorker {
	var out []*simWorker
	for _, w := range s.ws {
		if w.alive() {
			out = append(out, w)
		}
	}
	return out
}

func (s *sim) chance(perSecond float64) bool {
	return s.rng.Float64() < perSecond*simTick.Seconds()
}

func (s *sim) chaosEvents() {
	live := s.live()
	pick := func() *simWorker {
		if s.cfg.slowRate > 0 && s.rng.IntN(2) == 0 && s.ws[0].alive() {
			return s.ws[0] // the slow clock is the interesting victim
		}
		return live[s.rng.IntN(len(live))]
	}
	switch {
	case s.chance(1.0/40) && s.mayDisturb():
		w := live[s.rng.IntN(len(live))]
		if w == s.ws[0] && s.cfg.slowRate > 0 {
			return // keep the slow clock in the game
		}
		w.crashed = true
		s.stats.crashes++
	case s.chance(1.0/60) && s.mayDisturb():
		w := live[s.rng.IntN(len(live))]
		if !w.running() || (w == s.ws[0] && s.cfg.slowRate > 0) {
			return
		}
		w.left = true
		s.stats.leaves++
		s.runStep(w, func() { _ = w.m.releaseAll(context.Background()) }, nil)
	case s.chance(1.0/15) && len(live) < s.cfg.maxWorkers:
		s.join(0)
	case s.chance(1.0/8) && s.mayDisturb():
		w := pick()
		w.pausedUntil = s.now + time.Duration(s.rng.Int64N(int64(2*simFailover)))
		s.stats.pauses++
	case s.chance(1.0/15) && s.mayDisturb():
		w := pick()
		w.partitionedUntil = s.now + time.Duration(s.rng.Int64N(int64(3*simFailover/2)))
	}
}

// step runs what w's goroutines would run by now: the watchdog, the renewal and take
// cycles when due.
func (s *sim) step(w *simWorker) {
	if !w.running() {
		return
	}
	local := w.clock.Now()
	w.m.mu.Lock()
	w.m.expireStaleLocked(local) // the watchdog
	w.m.mu.Unlock()
	if !local.Before(w.nextRenew) {
		w.nextRenew = local.Add(w.m.cfg.RenewInterval)
		s.runStep(w, func() { w.renewFailed = w.m.renewOnce(context.Background()) }, func() {
			if w.renewFailed {
				w.nextRenew = w.clock.Now().Add(w.m.cfg.RenewInterval / 3)
			}
		})
	}
	if w.running() && !local.Before(w.nextTake) {
		w.nextTake = local.Add(w.m.cfg.TakeInterval)
		s.runStep(w, func() { _ = w.m.takeOnce(context.Background()) }, nil)
	}
}

// readers plays the consumer of every running worker: claims on Acquired, stops on Lost,
// and commits for every shard it still holds.
func (s *sim) readers(w *simWorker) {
	if !w.running() {
		return
	}
	w.m.mu.Lock()
	events := w.m.queue
	w.m.queue = nil
	w.m.mu.Unlock()
	for _, ev := range events {
		switch ev.Kind {
		case Acquired:
			if ev.Token < s.claimed[ev.ShardID] {
				s.stats.staleClaims++ // FAILED_PRECONDITION: a newer owner claimed already
				continue
			}
			s.claimed[ev.ShardID] = ev.Token
			w.claims[ev.ShardID] = ev.Token
		case Lost:
			if w.claims[ev.ShardID] == ev.Token {
				delete(w.claims, ev.ShardID)
			}
		}
	}
	shards := make([]string, 0, len(w.claims))
	for id := range w.claims {
		shards = append(shards, id)
	}
	sort.Strings(shards)
	for _, id := range shards {
		token := w.claims[id]
		s.stats.commits++
		if token != s.claimed[id] {
			s.stats.staleRefused++ // fenced off: the reader stops
			delete(w.claims, id)
			continue
		}
		if owner := s.tokenOwner[id][token]; owner != w.id {
			s.t.Errorf("t=%s: commit for %s with token %d accepted from %s, but the token was handed to %q", s.now, id, token, w.id, owner)
		}
	}
}

// beliefs checks who believes it holds each shard: overlaps, and shards nobody serves.
func (s *sim) beliefs(overlapSince, gapSince map[string]time.Duration) {
	believers := map[string][]*simWorker{}
	for _, w := range s.ws {
		if !w.alive() {
			continue
		}
		for id := range w.m.Held() {
			believers[id] = append(believers[id], w)
		}
	}
	for _, id := range s.ids {
		bs := believers[id]
		if len(bs) > 1 {
			s.stats.overlapTicks++
			if _, ok := overlapSince[id]; !ok {
				overlapSince[id] = s.now
			}
			s.stats.maxOverlap = max(s.stats.maxOverlap, s.now-overlapSince[id])
		} else {
			delete(overlapSince, id)
		}
		served := slices.ContainsFunc(bs, func(w *simWorker) bool { return w.running() })
		if served {
			delete(gapSince, id)
			continue
		}
		if _, ok := gapSince[id]; !ok {
			gapSince[id] = s.now
		}
		s.stats.maxGap = max(s.stats.maxGap, s.now-gapSince[id])
	}
}

func (s *sim) run() {
	overlapSince, gapSince := map[string]time.Duration{}, map[string]time.Duration{}
	for s.now = 0; s.now <= s.cfg.chaos+s.cfg.quiet; s.now += simTick {
		s.setClocks()
		if s.now < s.cfg.chaos {
			s.chaosEvents()
		}
		if s.cfg.script != nil {
			s.cfg.script()
		}
		for _, w := range s.ws {
			if w.parked && !w.crashed && s.now >= w.parkedUntil {
				w.parked, w.unparkedAt = false, s.now
				w.resume <- false
				s.await(w, w.stepDone)
			}
		}
		order := s.rng.Perm(len(s.ws))
		for _, i := range order {
			s.step(s.ws[i])
		}
		for _, i := range order {
			s.readers(s.ws[i])
		}
		s.beliefs(overlapSince, gapSince)
	}
	// Let suspended steps of crashed workers end.
	for _, w := range s.ws {
		if w.parked {
			w.resume <- true
			<-w.stepDone
		}
	}
}

// checkBalanced asserts that after the quiet time every shard has exactly one owner, the
// table agrees, and loads are within ⌊S/N⌋..⌈S/N⌉.
func (s *sim) checkBalanced() {
	live := s.live()
	owner := map[string]string{}
	floor, ceil := len(s.ids)/len(live), (len(s.ids)+len(live)-1)/len(live)
	loads := map[string]int{}
	for _, w := range live {
		held := w.m.Held()
		loads[w.id] = len(held)
		if len(held) < floor || len(held) > ceil {
			s.t.Errorf("%s holds %d leases, want %d..%d", w.id, len(held), floor, ceil)
		}
		for id := range held {
			if prev, dup := owner[id]; dup {
				s.t.Errorf("%s held by %s and %s at the end", id, prev, w.id)
			}
			owner[id] = w.id
		}
	}
	leases, err := s.store.List(context.Background(), "batting")
	if err != nil {
		s.t.Fatalf("list: %v", err)
	}
	for _, l := range leases {
		if owner[l.ShardID] != l.Owner {
			s.t.Errorf("%s: table owner %q, held by %q", l.ShardID, l.Owner, owner[l.ShardID])
		}
	}
	if len(owner) != len(s.ids) {
		s.t.Errorf("%d of %d shards held at the end; loads %v", len(owner), len(s.ids), loads)
	}
}

func TestSimulation(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			t.Parallel()
			s := newSim(t, simConfig{seed: seed, workers: 5, maxWorkers: 7, shards: 24, skew: 0.2,
				chaos: 60 * simFailover, quiet: 15 * simFailover})
			s.run()
			st := s.stats
			t.Logf("%+v", st)
			s.checkBalanced()

			// A lease taken as expired was never still believed by its owner (the 2/3 rule).
			if st.expiryOverlaps != 0 {
				t.Errorf("%d expired takes overlapped their owner's belief", st.expiryOverlaps)
			}
			// Two workers believe together only after a steal, until the victim's next
			// renewal: at most 2/3 of the failover time on the victim's (slowest) clock.
			if bound := time.Duration(float64(simFailover*2/3)/(1-s.cfg.skew)) + 2*simTick; st.maxOverlap > bound {
				t.Errorf("longest overlap %s, want at most %s", st.maxOverlap, bound)
			}
			// A shard nobody serves (its owner crashed, paused, cut off or left without
			// releasing) is served again within: a renewal interval (the owner's last
			// renewal may precede its end by that much), a take interval (the first read of
			// the last counter), the failover time, a take interval (orphaned: beyond every
			// healthy worker's share) and another (the take) — all on the slowest clock.
			cfg := s.ws[0].m.cfg
			if bound := time.Duration(float64(cfg.RenewInterval+cfg.FailoverTime+3*cfg.TakeInterval)/(1-s.cfg.skew)) + 2*simTick; st.maxGap > bound {
				t.Errorf("longest time a shard went unserved %s, want at most %s", st.maxGap, bound)
			}
			if st.expiryTakes == 0 || st.steals == 0 || st.crashes == 0 || st.pauses == 0 || st.parks == 0 {
				t.Errorf("the chaos did not exercise every path: %+v", st)
			}
		})
	}
}

// TestSimulationBeyondSkewTolerance gives one worker a clock at 0.4× real time, far beyond
// the 2/3 rule: it keeps believing in leases others already took. The lease layer still
// hands out unique, increasing tokens, and the fence refuses every stale commit.
func TestSimulationBeyondSkewTolerance(t *testing.T) {
	for _, seed := range []uint64{7, 8} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			t.Parallel()
			s := newSim(t, simConfig{seed: seed, workers: 5, maxWorkers: 7, shards: 24, skew: 0.1, slowRate: 0.4,
				chaos: 60 * simFailover, quiet: 15 * simFailover})
			s.run()
			t.Logf("%+v", s.stats)
			if s.stats.expiryOverlaps == 0 {
				t.Errorf("the slow clock never caused an overlap: the test exercises nothing")
			}
			if s.stats.staleRefused == 0 {
				t.Errorf("no stale commit was ever attempted and refused")
			}
		})
	}
}
