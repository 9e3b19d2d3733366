// Package lease shares a stream's shards among the replicas of a consumer group with
// leases in PostgreSQL, as the Kinesis Client Library does with DynamoDB.
//
// # Protocol
//
// One row per shard: (stream, shard_id, owner, counter). Every take, renewal and release is
// an UPDATE conditional on the counter the worker last saw (renewals and releases also on
// being the owner) that increments it. A worker that lost a lease can therefore neither
// renew nor release it: its next renewal updates no row and it reports the lease Lost.
//
// Each worker renews the leases it holds every RenewInterval (FailoverTime/3 by default) in
// a goroutine of its own, never on the record path: a slow or blocked warehouse delays
// records, never renewals. Every TakeInterval (FailoverTime/12 by default) it reads all
// leases and:
//
//   - takes back at once, whatever its share, every lease owned by its own WorkerID that it
//     does not hold: its predecessor's, when a process restarts under the same identity (a
//     pod's name survives a container restart), or its own after a pause made it give the
//     lease up. The take is conditional on the counter like any other and increments it,
//     so the lease comes back under a new, greater token, and the claim in the warehouse
//     under that token fences the dead process off;
//   - takes unowned leases (new shards, leases released at shutdown) at once;
//   - takes a lease whose counter it has seen unchanged for FailoverTime on its own
//     monotonic clock, counted from the first read that returned that counter (the owner
//     stopped renewing). Wall clocks of other hosts, and the updated_at column, are never
//     compared with anything;
//   - balances: with N live workers (owners of leases that are not expired, plus itself)
//     and S leases each worker aims at ⌊S/N⌋ or ⌈S/N⌉. An owner all of whose leases it has
//     seen unchanged for 2F/3 (two renewal intervals: the owner, on its own clock, has given
//     them up by then) is silent, presumed dead: not counted in N, so that when its leases
//     expire the survivors' shares already cover them; and nobody steals while a silent
//     owner's leases are pending, since they come free within F anyway. It takes available leases up to
//     ⌈S/N⌉; when none are available and it holds fewer than ⌈S/N⌉, it steals one lease
//     per cycle from the most loaded worker, if that one holds at least two more than
//     itself and either it is below ⌊S/N⌋ or the victim is above ⌈S/N⌉. Every steal
//     lowers the sum of squared loads, so balancing ends, moving one lease at a time;
//   - adopts orphans: a lease still available a whole TakeInterval after it became so
//     (every worker below its share is cut off or paused, or a second victim of kills in a
//     row is still counted live) is taken even beyond ⌈S/N⌉. A shard nobody reads is worse
//     than an uneven spread, which stealing evens out.
//
// A steal is a take with the observed counter: the victim's next renewal fails and it
// stops reading the shard. On graceful shutdown (Run's context ends) every held lease is
// released (owner NULL, counter+1) so others take it on their next cycle instead of after
// FailoverTime.
//
// # Fencing tokens
//
// The token handed out with an Acquired event is the counter right after the take. The
// counter of a shard only grows, so tokens of successive owners of a shard strictly
// increase and no two takes ever get the same token. The consumer claims the shard in the
// warehouse with its token before reading (LoadService.ClaimShard) and every commit
// carries it (LoadRequest.lease_token): once a newer owner has claimed, a former owner's
// commits are refused, whatever it believes.
//
// A lease table that was reset (rows deleted, another database or schema) starts its
// counters again below the tokens the warehouse holds, and every claim is refused. The
// holder then raises its token (Manager.RaiseToken, Store.Raise): a renewal, conditional
// on the owner and the counter like any renewal, that sets the counter to
// max(counter, warehouse token)+1. Only the current holder can raise, the raised token is
// above every token the shard had, and later takes start from it: tokens stay unique and
// increasing, and the newest holder still fences every older one. A lease the warehouse
// will not let its holder use is given back (Manager.GiveUp) rather than held unread.
//
// # Why a worker gives up its lease after 2/3 of FailoverTime
//
// Let F be FailoverTime and ρ a worker's clock rate relative to real time. Say worker A's
// last successful renewal was sent at real time s and committed at w ≥ s, leaving counter
// c. Worker B may take the lease only with an UPDATE conditional on c, after seeing c
// unchanged for F on its own clock, counted from when the first read returning c came
// back — which is after w. So B's take commits no earlier than w + F/ρB.
//
// A counts its lease as lost once 2F/3 has passed on its own clock since it SENT its last
// successful renewal (not since the reply came: a pause between the two must not extend
// the lease): at real time s + (2F/3)/ρA ≤ w + (2F/3)/ρA. Manager.Held and Manager.Holds
// stop reporting the lease from that instant, and a Lost event is queued — by a watchdog
// that needs no database, and first thing in every renewal and take cycle, so a process
// resuming from a pause judges its leases before doing anything else. The two intervals
// never overlap as long as ρA/ρB ≥ 2/3: clock rates may differ by a third before the
// argument breaks, while real clocks drift by parts per million. Renewing every F/3
// leaves room for one failed renewal, retried after RenewInterval/3.
//
// Shorter defaults change none of this: the argument holds for any F, since only the ratio
// of clock rates enters it. The silent-owner rule only changes who counts as live for
// balancing; nothing is taken before it expired.
//
// That bounds belief for expired leases only. A stolen lease is believed by its former
// owner until its next renewal fails (at most 2F/3 later); and a reader told Lost may take
// a moment to stop. Those windows are what the warehouse fence above closes: the lease
// layer promises unique, increasing tokens; the warehouse refuses stale ones.
//
// # Failover time
//
// A shard whose holder died is held by a live worker again within F + 3·TakeInterval on
// the survivors' clocks (7.5 s with the defaults F = 6 s, renewals every 2 s, reads every
// 500 ms), whatever came before: the holder's last renewal precedes its death; a survivor's
// first read of that counter comes at most a TakeInterval after it; the lease expires F
// later and a read sees it at most a TakeInterval after that, when every survivor takes up
// to its share (the dead one is silent by then, not counted); what shares did not cover (a
// second victim killed in a row, still counted live) is an orphan one TakeInterval later,
// taken whatever the share. A lease taken by a worker that then dies starts that wait again
// from its death, not from the first one's: kills in a row never stack beyond the bound
// from the last of them. A holder restarted under its identity before its leases expire
// takes them back on its first read, at once. The remaining ~2 s of the 10 s promise are
// for the consumer's claim and first read. The fake-clock tests (failover_sim_test.go)
// check this bound, with restarts, peers that never return, kills in a row and skew.
//
// # Identity
//
// WorkerID is the worker's identity in the table, stable across restarts when the
// deployment can promise that no two live processes ever share it (a pod's name: the
// chart sets it). A lease owned by this worker's id but not held by it is taken back at
// once. If two live processes did share an id, both would take "their own" leases from
// each other on every read: the leases ping-pong and the shards barely move, but fencing
// holds — every take gets a new token, and the warehouse refuses the older one's commits.
package lease

import (
	"errors"
	"fmt"
	"time"
)

// DefaultFailoverTime is how long a lease's counter must be seen unchanged before the
// lease is taken from its silent owner. With the default intervals (renewals every 2 s,
// reads every 500 ms) every shard of a dead replica is held by a live one within
// FailoverTime + 3×TakeInterval = 7.5 s of its death: see "Failover time" in the package doc.
const DefaultFailoverTime = 6 * time.Second

// ErrNotOwner means a release found the lease owned by someone else (or renewed by
// another, fenced request): this worker had already lost it.
var ErrNotOwner = errors.New("lease is no longer held by this worker")

// Config tunes a Manager. Zero durations take their defaults.
type Config struct {
	// Stream is the stream whose shards are leased.
	Stream string
	// WorkerID identifies this worker in the lease table. Never used by two live processes
	// at once; a process restarted under its predecessor's id takes the predecessor's
	// leases back at once (see the package doc).
	WorkerID string
	// FailoverTime: a lease whose counter did not change for this long, as seen on this
	// worker's clock, is taken from its owner. Default DefaultFailoverTime.
	FailoverTime time.Duration
	// RenewInterval is the time between two renewals of the held leases; at most
	// FailoverTime/3 (the default).
	RenewInterval time.Duration
	// TakeInterval is the time between two reads of the lease table to take and balance
	// leases. Default FailoverTime/12: a dead owner's leases are taken within a take
	// interval or two of their expiry.
	TakeInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.FailoverTime == 0 {
		c.FailoverTime = DefaultFailoverTime
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.FailoverTime / 3
	}
	if c.TakeInterval == 0 {
		c.TakeInterval = c.FailoverTime / 12
	}
	return c
}

// Validate reports every problem with the config (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("lease config: stream is required"))
	}
	if c.WorkerID == "" {
		errs = append(errs, errors.New("lease config: worker id is required"))
	}
	if c.FailoverTime < 0 {
		errs = append(errs, fmt.Errorf("lease config: failover time %s is negative", c.FailoverTime))
	}
	if c.RenewInterval <= 0 || c.RenewInterval > c.FailoverTime/3 {
		errs = append(errs, fmt.Errorf("lease config: renew interval %s must be positive and at most a third of the failover time %s", c.RenewInterval, c.FailoverTime))
	}
	if c.TakeInterval <= 0 {
		errs = append(errs, fmt.Errorf("lease config: take interval %s must be positive", c.TakeInterval))
	}
	return errors.Join(errs...)
}

// EventKind says what happened to a lease.
type EventKind int

const (
	// Acquired: this worker took the lease; Token is its fencing token.
	Acquired EventKind = iota + 1
	// Lost: this worker no longer holds the lease (taken by another, or not renewed in
	// time); its reader must stop without committing.
	Lost
)

func (k EventKind) String() string {
	switch k {
	case Acquired:
		return "acquired"
	case Lost:
		return "lost"
	default:
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
}

// Event reports an acquired or lost lease.
type Event struct {
	Kind    EventKind
	ShardID string
	// Token is the fencing token of the lease acquired or lost.
	Token int64
}
