package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Manager holds this worker's leases on one stream's shards: it renews them, takes
// unowned and expired ones, balances with the other workers and reports acquisitions and
// losses on Events. Build it with NewManager and start it with Run.
type Manager struct {
	cfg       Config
	store     Store
	clock     Clock
	log       *slog.Logger
	metrics   *metrics
	lostAfter time.Duration // 2/3 of FailoverTime: see the package doc
	opTimeout time.Duration // bound on one store call

	running atomic.Bool
	events  chan Event
	notify  chan struct{} // a queued event waits for the forwarder
	kick    chan struct{} // the shard set changed: take now

	// opsMu serializes renewals and releases: both are conditional on the held counter,
	// which each of them moves.
	opsMu sync.Mutex

	mu       sync.Mutex
	wanted   map[string]bool // shards to lease, from SetShards
	ensured  map[string]bool // shards whose lease row is known to exist
	held     map[string]*heldLease
	observed map[string]observation
	queue    []Event // events not yet handed to Events' reader
	rng      *rand.Rand

	// onTake, when set (tests), is told of every successful take, under mu.
	onTake func(shardID, previousOwner string, token int64, stolen bool)
}

type heldLease struct {
	counter int64 // last counter this worker wrote
	token   int64 // counter right after the take
	// renewedAt is when the last successful renewal (or the take) was SENT, on this
	// worker's clock: the lease counts as held until renewedAt + lostAfter.
	renewedAt time.Time
}

// observation is what this worker last read of a lease it does not hold, and since when
// (the return of the first read that showed that counter) it has seen it unchanged.
type observation struct {
	owner   string
	counter int64
	since   time.Time
}

// NewManager returns a manager of cfg.Stream's leases for worker cfg.WorkerID. A nil clock
// means RealClock; a nil logger discards; a nil meter records nothing.
func NewManager(cfg Config, store Store, clock Clock, logger *slog.Logger, meter metric.Meter) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if store == nil {
		return nil, errors.New("lease manager: store is required")
	}
	if clock == nil {
		clock = RealClock{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(meter, cfg.Stream)
	if err != nil {
		return nil, err
	}
	seed := fnv.New64a()
	_, _ = seed.Write([]byte(cfg.WorkerID)) // hash.Hash.Write never fails
	return &Manager{
		cfg: cfg, store: store, clock: clock, metrics: m,
		log:       logger.With("stream", cfg.Stream, "worker_id", cfg.WorkerID),
		lostAfter: cfg.FailoverTime * 2 / 3,
		opTimeout: cfg.RenewInterval,
		events:    make(chan Event),
		notify:    make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		wanted:    map[string]bool{},
		ensured:   map[string]bool{},
		held:      map[string]*heldLease{},
		observed:  map[string]observation{},
		rng:       rand.New(rand.NewPCG(seed.Sum64(), 0x6c65617365)), //nolint:gosec // spreads workers' choices; nothing secret is drawn from it
	}, nil
}

// Run keeps the leases until ctx ends: renewals, takes and balancing each in their own
// goroutine, and a watchdog that reports a lease Lost once it went unrenewed for 2/3 of
// FailoverTime even if the store cannot be reached. When ctx ends it releases every lease
// still held and returns the release errors, if any. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("lease manager: Run called twice")
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.renewLoop(ctx) })
	wg.Go(func() { m.takeLoop(ctx) })
	wg.Go(func() { m.watchLoop(ctx) })
	wg.Go(func() { m.forwardEvents(ctx) })
	wg.Wait()
	return m.releaseAll(context.WithoutCancel(ctx))
}

// SetShards tells which shards exist and need reading. Lease rows are created for new ones;
// leases of shards no longer listed are neither taken nor counted for balancing, but a
// held one stays held (and renewed) until Release: the consumer decides when it is done.
func (m *Manager) SetShards(ids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]bool, len(ids))
	changed := false
	for _, id := range ids {
		next[id] = true
		if !m.wanted[id] {
			changed = true
		}
	}
	if len(next) != len(m.wanted) {
		changed = true
	}
	m.wanted = next
	if changed {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// Events delivers acquisitions and losses in the order they happened. Delivery never
// blocks the renewals: events queue while nobody reads. The channel is never closed.
func (m *Manager) Events() <-chan Event { return m.events }

// Held returns the leases this worker holds now, shard id -> fencing token. A lease not
// renewed for 2/3 of FailoverTime is not listed, even before its Lost event is read.
func (m *Manager) Held() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	out := make(map[string]int64, len(m.held))
	for id, h := range m.held {
		if now.Sub(h.renewedAt) < m.lostAfter {
			out[id] = h.token
		}
	}
	return out
}

// Holds reports whether this worker holds the shard's lease under token right now, on its
// own clock. A reader may ask before each commit; the warehouse's fence stays the guard.
func (m *Manager) Holds(shardID string, token int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.held[shardID]
	return ok && h.token == token && m.clock.Now().Sub(h.renewedAt) < m.lostAfter
}

// Release gives the shard's lease back (a finished shard, or before exit) so others may
// take it at once; no Lost event follows. Releasing a lease not held is a no-op. It
// returns ErrNotOwner when the lease had been taken by another worker meanwhile. A shard
// still listed in SetShards may be taken again (by anyone, this worker included): drop it
// from the list first when it is finished.
func (m *Manager) Release(ctx context.Context, shardID string) error {
	return m.release(ctx, shardID, 0)
}

// release is Release, of the lease only if it is held under onlyToken when that is not 0.
func (m *Manager) release(ctx context.Context, shardID string, onlyToken int64) error {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	m.mu.Lock()
	h, ok := m.held[shardID]
	if ok && onlyToken != 0 && h.token != onlyToken {
		m.mu.Unlock()
		return fmt.Errorf("release lease of shard %s under token %d: %w", shardID, onlyToken, ErrNotHeld)
	}
	if ok {
		delete(m.held, shardID)
		m.metrics.heldNow(len(m.held))
	}
	m.mu.Unlock()
	if !ok {
		return nil
	}
	opCtx, cancel := context.WithTimeout(ctx, m.opTimeout)
	defer cancel()
	released, err := m.store.Release(opCtx, m.cfg.Stream, shardID, m.cfg.WorkerID, h.counter)
	if err != nil {
		return fmt.Errorf("release lease of shard %s: %w", shardID, err)
	}
	if !released {
		return fmt.Errorf("release lease of shard %s (token %d): %w", shardID, h.token, ErrNotOwner)
	}
	m.log.Info("lease released", "shard_id", shardID, "token", h.token)
	return nil
}

// ErrNotHeld means the lease is not held under the token named: it was lost, released,
// or taken again under another token.
var ErrNotHeld = errors.New("lease not held under this token")

// RaiseToken lifts the fencing token of a held lease above above, a token the warehouse
// refused this worker's claim with: the lease store was reset (rows deleted, another
// database or schema) and its counters started again below the tokens already claimed.
// It is one conditional update of the store — only if this worker still owns the lease at
// the counter it last wrote — that sets the counter to max(counter, above)+1, so the new
// token is greater than every token the lease row and the warehouse ever saw for the
// shard, and unique: any later take starts from it. It counts as a renewal.
//
// On success the lease is held under the new token, reported as Lost under the old token
// and then Acquired under the new one (in that order on Events), so readers under the old
// token stop and one under the new token claims again. ErrNotHeld when the lease is not
// held under token; ErrNotOwner (and a Lost event) when the store says another worker has
// it now.
func (m *Manager) RaiseToken(ctx context.Context, shardID string, token, above int64) (int64, error) {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	m.mu.Lock()
	sent := m.clock.Now()
	m.expireStaleLocked(sent)
	h, ok := m.held[shardID]
	if !ok || h.token != token {
		m.mu.Unlock()
		return 0, fmt.Errorf("raise token %d of shard %s: %w", token, shardID, ErrNotHeld)
	}
	counter := h.counter
	m.mu.Unlock()

	opCtx, cancel := context.WithTimeout(ctx, m.opTimeout)
	raised, ok, err := m.store.Raise(opCtx, m.cfg.Stream, shardID, m.cfg.WorkerID, counter, above)
	cancel()

	m.mu.Lock()
	defer m.mu.Unlock()
	h, still := m.held[shardID]
	switch {
	case !still || h.counter != counter:
		// Reported lost by the watchdog meanwhile.
		return 0, fmt.Errorf("raise token %d of shard %s: %w", token, shardID, ErrNotHeld)
	case err != nil:
		return 0, fmt.Errorf("raise token %d of shard %s: %w", token, shardID, err)
	case !ok:
		m.loseLocked(shardID, h, "token raise refused: another worker took the lease")
		return 0, fmt.Errorf("raise token %d of shard %s: %w", token, shardID, ErrNotOwner)
	}
	h.counter, h.token, h.renewedAt = raised, raised, sent
	m.observed[shardID] = observation{owner: m.cfg.WorkerID, counter: raised, since: sent}
	m.metrics.raises.Add(context.Background(), 1, m.metrics.attrs)
	m.log.Warn("fencing token raised above the warehouse's", "shard_id", shardID, "old_token", token, "warehouse_token", above, "token", raised)
	m.emitLocked(Event{Kind: Lost, ShardID: shardID, Token: token})
	m.emitLocked(Event{Kind: Acquired, ShardID: shardID, Token: raised})
	return raised, nil
}

// GiveUp releases the lease if it is still held under token: the warehouse refused this
// worker's claim or commits under it, and a lease held but unread would keep the shard
// from every other worker. Another worker, or this one on a later take, may take it at
// once. A lease not held under token (lost meanwhile, or held again under a newer token)
// is left alone: nil. reason is logged.
func (m *Manager) GiveUp(ctx context.Context, shardID string, token int64, reason string) error {
	if token == 0 {
		return nil
	}
	m.mu.Lock()
	_, ok := m.held[shardID]
	m.mu.Unlock()
	err := m.release(ctx, shardID, token)
	switch {
	case !ok || errors.Is(err, ErrNotHeld):
		return nil
	case errors.Is(err, ErrNotOwner):
		// Already another worker's: nothing to give.
		m.log.Info("lease given up was already taken over", "shard_id", shardID, "token", token, "reason", reason)
		return nil
	case err != nil:
		return err
	}
	m.metrics.refusals.Add(context.Background(), 1, m.metrics.attrs)
	m.log.Warn("lease given up: the warehouse refused this worker under it", "shard_id", shardID, "token", token, "reason", reason)
	return nil
}

func (m *Manager) releaseAll(ctx context.Context) error {
	m.mu.Lock()
	m.expireStaleLocked(m.clock.Now())
	ids := make([]string, 0, len(m.held))
	for id := range m.held {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		err := m.Release(ctx, id)
		switch {
		case errors.Is(err, ErrNotOwner):
			// Taken by another worker (a steal, say) while we were stopping: it is theirs
			// now, which is what releasing was for.
			m.log.Info("lease already taken over at release", "shard_id", id)
		case err != nil:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) renewLoop(ctx context.Context) {
	for {
		wait := m.cfg.RenewInterval
		if m.renewOnce(ctx) {
			// One failed renewal must not cost the lease: retry well before 2F/3.
			wait = m.cfg.RenewInterval / 3
		}
		if !m.sleep(ctx, wait, nil) {
			return
		}
	}
}

func (m *Manager) takeLoop(ctx context.Context) {
	for {
		if err := m.takeOnce(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("lease take cycle failed", "error", err)
		}
		if !m.sleep(ctx, m.cfg.TakeInterval, m.kick) {
			return
		}
	}
}

// watchLoop reports leases lost as soon as they go unrenewed for lostAfter, even while the
// renewal loop is stuck in a store call.
func (m *Manager) watchLoop(ctx context.Context) {
	for {
		m.mu.Lock()
		now := m.clock.Now()
		m.expireStaleLocked(now)
		wait := m.lostAfter // a lease taken from now on expires later than this
		for _, h := range m.held {
			if d := h.renewedAt.Add(m.lostAfter).Sub(now); d < wait {
				wait = d
			}
		}
		m.mu.Unlock()
		if !m.sleep(ctx, wait, nil) {
			return
		}
	}
}

// sleep waits d on the manager's clock, or until wake fires; false when ctx ended.
func (m *Manager) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := m.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
	case <-wake:
	}
	return true
}

func (m *Manager) forwardEvents(ctx context.Context) {
	for {
		m.mu.Lock()
		if len(m.queue) == 0 {
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-m.notify:
				continue
			}
		}
		ev := m.queue[0]
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case m.events <- ev:
			m.mu.Lock()
			m.queue = m.queue[1:]
			m.mu.Unlock()
		}
	}
}

// emitLocked queues an event for Events' reader.
func (m *Manager) emitLocked(ev Event) {
	m.queue = append(m.queue, ev)
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// loseLocked forgets a held lease and reports it Lost.
func (m *Manager) loseLocked(shardID string, h *heldLease, why string) {
	delete(m.held, shardID)
	m.metrics.losses.Add(context.Background(), 1, m.metrics.attrs)
	m.metrics.heldNow(len(m.held))
	m.log.Warn("lease lost", "shard_id", shardID, "token", h.token, "reason", why)
	m.emitLocked(Event{Kind: Lost, ShardID: shardID, Token: h.token})
}

// expireStaleLocked reports Lost every held lease not renewed for lostAfter.
func (m *Manager) expireStaleLocked(now time.Time) {
	for id, h := range m.held {
		if now.Sub(h.renewedAt) >= m.lostAfter {
			m.loseLocked(id, h, fmt.Sprintf("not renewed for %s", now.Sub(h.renewedAt).Round(time.Millisecond)))
		}
	}
}

// renewOnce renews every held lease once; it reports whether any renewal failed with an
// error (a refusal is a loss, not a failure).
func (m *Manager) renewOnce(ctx context.Context) (failed bool) {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	type toRenew struct {
		shardID string
		counter int64
	}
	m.mu.Lock()
	m.expireStaleLocked(m.clock.Now()) // first thing, e.g. after a pause
	items := make([]toRenew, 0, len(m.held))
	for id, h := range m.held {
		items = append(items, toRenew{id, h.counter})
	}
	m.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].shardID < items[j].shardID })

	for _, it := range items {
		if ctx.Err() != nil {
			return true
		}
		m.mu.Lock()
		sent := m.clock.Now()
		m.expireStaleLocked(sent)
		_, still := m.held[it.shardID]
		m.mu.Unlock()
		if !still {
			continue
		}
		opCtx, cancel := context.WithTimeout(ctx, m.opTimeout)
		counter, ok, err := m.store.Renew(opCtx, m.cfg.Stream, it.shardID, m.cfg.WorkerID, it.counter)
		cancel()

		m.mu.Lock()
		h, still := m.held[it.shardID]
		switch {
		case !still || h.counter != it.counter:
			// Reported lost by the watchdog meanwhile; the take loop will see the row.
		case err != nil:
			failed = true
			m.metrics.renewFailures.Add(context.Background(), 1, m.metrics.attrs)
			m.log.Warn("lease renewal failed", "shard_id", it.shardID, "error", err)
		case !ok:
			m.loseLocked(it.shardID, h, "renewal refused: another worker took the lease")
		default:
			h.counter = counter
			h.renewedAt = sent
		}
		m.mu.Unlock()
	}
	return failed
}

// takePlan is what one take cycle will try.
type takePlan struct {
	// orphans are taken whatever the share: leases under this worker's own id that it does
	// not hold (its predecessor's, after a restart under the same identity), and leases
	// available for a take interval already.
	orphans   []Lease
	available []Lease // other unowned or expired leases
	want      int     // how many leases to take in all, orphans included, unless orphans exceed it
	steal     *Lease  // one lease of the most loaded worker, when nothing is available
}

// takeOnce reads the lease table, takes what is available up to this worker's share, or
// steals one lease to balance.
func (m *Manager) takeOnce(ctx context.Context) error {
	m.mu.Lock()
	m.expireStaleLocked(m.clock.Now()) // first thing, e.g. after a pause
	var missing []string
	for id := range m.wanted {
		if !m.ensured[id] {
			missing = append(missing, id)
		}
	}
	m.mu.Unlock()
	if len(missing) > 0 {
		sort.Strings(missing)
		opCtx, cancel := context.WithTimeout(ctx, m.opTimeout)
		err := m.store.Ensure(opCtx, m.cfg.Stream, missing)
		cancel()
		if err != nil {
			return err
		}
		m.mu.Lock()
		for _, id := range missing {
			m.ensured[id] = true
		}
		m.mu.Unlock()
	}

	opCtx, cancel := context.WithTimeout(ctx, m.opTimeout)
	leases, err := m.store.List(opCtx, m.cfg.Stream)
	cancel()
	if err != nil {
		return err
	}
	m.mu.Lock()
	// A wanted lease missing from the table (rows deleted, the store moved) is created
	// again on the next cycle.
	listed := make(map[string]bool, len(leases))
	for _, l := range leases {
		listed[l.ShardID] = true
	}
	for id := range m.ensured {
		if !listed[id] {
			delete(m.ensured, id)
			if m.wanted[id] {
				select {
				case m.kick <- struct{}{}:
				default:
				}
			}
		}
	}
	// The time the read came back: a counter first seen now was written before it.
	plan := m.planLocked(leases, m.clock.Now())
	m.mu.Unlock()

	taken := 0
	for i, l := range append(plan.orphans, plan.available...) {
		if (i >= len(plan.orphans) && taken >= plan.want) || ctx.Err() != nil {
			break
		}
		ok, err := m.take(ctx, l, false)
		if err != nil {
			return err
		}
		if ok {
			taken++
		}
	}
	if plan.steal != nil && ctx.Err() == nil {
		if _, err := m.take(ctx, *plan.steal, true); err != nil {
			return err
		}
	}
	return nil
}

// planLocked records what the read showed and decides what to take.
func (m *Manager) planLocked(leases []Lease, now time.Time) takePlan {
	me := m.cfg.WorkerID
	observed := make(map[string]observation, len(leases))
	// own: this worker's id, not held (a predecessor under the same identity). orphans
	// have been available for a whole take interval already: nobody below its target
	// took them. Both are taken whatever the share.
	var own, orphans, unowned, expired []Lease
	byOwner := map[string][]Lease{}
	// The shortest time any lease of an owner has been seen unchanged: an owner all of
	// whose leases went silent for lostAfter is not counted as live (see below).
	freshest := map[string]time.Duration{}
	total, mine := 0, 0
	for _, l := range leases {
		o, seen := m.observed[l.ShardID]
		if !seen || o.counter != l.Counter || o.owner != l.Owner {
			o = observation{owner: l.Owner, counter: l.Counter, since: now}
		}
		observed[l.ShardID] = o
		if h, held := m.held[l.ShardID]; held {
			if l.Owner != me && l.Counter > h.counter {
				m.loseLocked(l.ShardID, h, "taken by "+l.Owner)
			} else {
				// An older read than this worker's last write: it still holds the lease.
				if m.wanted[l.ShardID] {
					total++
					mine++
				}
				continue
			}
		}
		if !m.wanted[l.ShardID] {
			continue
		}
		total++
		switch unchanged := now.Sub(o.since); {
		case l.Owner == me:
			own = append(own, l)
		case l.Owner == "" && unchanged >= m.cfg.TakeInterval,
			l.Owner != "" && unchanged >= m.cfg.FailoverTime+m.cfg.TakeInterval:
			orphans = append(orphans, l)
		case l.Owner == "":
			unowned = append(unowned, l)
		case unchanged >= m.cfg.FailoverTime:
			expired = append(expired, l)
		default:
			byOwner[l.Owner] = append(byOwner[l.Owner], l)
			if f, ok := freshest[l.Owner]; !ok || unchanged < f {
				freshest[l.Owner] = unchanged
			}
		}
	}
	m.observed = observed

	// Silent owners (every lease unchanged for lostAfter: by its own clock, give or take
	// the rates, the owner has already given them up) are not counted as live, so that when
	// their leases expire the survivors' shares already cover them; and nothing is stolen
	// while they are pending, since they become available within FailoverTime anyway.
	silent := 0
	for owner, f := range freshest {
		if f >= m.lostAfter {
			delete(byOwner, owner)
			silent++
		}
	}
	workers := len(byOwner) + 1 // live others, and this worker
	if total == 0 {
		return takePlan{}
	}
	floor, ceil := total/workers, (total+workers-1)/workers
	// Own leases first (nobody else takes them before they expire), then orphans, then
	// unowned, then expired leases, each in random order so that workers starting together
	// collide less. Own leases and orphans are taken even beyond this worker's share: a
	// shard nobody reads is worse than an uneven spread, which stealing evens out.
	for _, list := range [][]Lease{own, orphans, unowned, expired} {
		m.rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
	plan := takePlan{orphans: append(own, orphans...), want: max(ceil-mine, 0)}
	plan.available = append(unowned, expired...)
	if len(plan.orphans)+len(plan.available) > 0 || mine >= ceil || silent > 0 {
		return plan
	}
	// Nothing to pick up: steal one lease from the most loaded worker if that evens out.
	victim, most := "", 0
	for owner, ls := range byOwner {
		if len(ls) > most || (len(ls) == most && owner < victim) {
			victim, most = owner, len(ls)
		}
	}
	if most >= mine+2 && (mine < floor || most > ceil) {
		ls := byOwner[victim]
		l := ls[m.rng.IntN(len(ls))]
		plan.steal = &l
	}
	return plan
}

// take takes one lease with the counter observed; ok is false when it moved on.
func (m *Manager) take(ctx context.Context, l Lease, stolen bool) (bool, error) {
	sent := m.clock.Now()
	opCtx, cancel := context.WithTimeout(ctx, m.opTimeout)
	counter, ok, err := m.store.Take(opCtx, m.cfg.Stream, l.ShardID, m.cfg.WorkerID, l.Counter)
	cancel()
	if err != nil {
		// Possibly taken anyway: the next read shows this worker's id, taken back as unowned.
		return false, err
	}
	if !ok {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held[l.ShardID] = &heldLease{counter: counter, token: counter, renewedAt: sent}
	m.observed[l.ShardID] = observation{owner: m.cfg.WorkerID, counter: counter, since: sent}
	m.metrics.takes.Add(context.Background(), 1, m.metrics.attrs)
	if stolen {
		m.metrics.steals.Add(context.Background(), 1, m.metrics.attrs)
	}
	m.metrics.heldNow(len(m.held))
	m.log.Info("lease acquired", "shard_id", l.ShardID, "token", counter, "previous_owner", l.Owner, "stolen", stolen)
	if m.onTake != nil {
		m.onTake(l.ShardID, l.Owner, counter, stolen)
	}
	m.emitLocked(Event{Kind: Acquired, ShardID: l.ShardID, Token: counter})
	return true, nil
}
