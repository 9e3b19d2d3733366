// Package quota keeps a token bucket per producer for events per second and bytes per
// second. A request over its producer's quota is refused at once with the time after which
// it would fit: the gateway never waits for tokens, so a producer over quota holds nothing
// and other producers, with their own buckets, are not slowed.
package quota

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

// Limits are a producer's sustained rates and the largest request that must always fit.
type Limits struct {
	EventsPerSecond float64
	BytesPerSecond  float64
}

// Limiter holds the buckets of every producer seen. It is safe for concurrent use; its lock
// is held only to find or create a producer's buckets, never while waiting.
type Limiter struct {
	defaults Limits
	// minEvents and minBytes are the bursts every bucket allows at least: one whole request
	// of the largest size, or a producer with a small rate could never send one.
	minEvents, minBytes int
	maxProducers        int
	now                 func() time.Time

	mu      sync.Mutex
	buckets map[string]*buckets
}

type buckets struct {
	limits        Limits
	events, bytes *rate.Limiter
	lastUsed      time.Time // under Limiter.mu
}

// DefaultMaxProducers is how many producers a gateway tracks buckets for.
const DefaultMaxProducers = 10_000

// New returns a limiter giving producers without a quota of their own the defaults. A
// bucket's burst is one second of its rate, but at least maxEvents events and maxBytes
// bytes (the largest request). At most maxProducers producers are tracked: past that, the
// buckets idle longest (full again by then) are forgotten.
func New(defaults Limits, maxEvents, maxBytes, maxProducers int) *Limiter {
	return &Limiter{defaults: defaults, minEvents: maxEvents, minBytes: maxBytes, maxProducers: maxProducers,
		now: time.Now, buckets: map[string]*buckets{}}
}

// effective fills q's unset fields from the defaults.
func (l *Limiter) effective(q apikey.Quota) Limits {
	lim := l.defaults
	if q.EventsPerSecond > 0 {
		lim.EventsPerSecond = q.EventsPerSecond
	}
	if q.BytesPerSecond > 0 {
		lim.BytesPerSecond = q.BytesPerSecond
	}
	return lim
}

func burst(perSecond float64, least int) int {
	if perSecond >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(least, int(math.Ceil(perSecond)))
}

func (l *Limiter) bucketsOf(producer string, q apikey.Quota, now time.Time) *buckets {
	lim := l.effective(q)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[producer]
	if ok && b.limits == lim {
		b.lastUsed = now
		return b
	}
	if ok { // the quota changed (a reloaded keys file): keep the tokens, change the rate
		b.events.SetLimitAt(now, rate.Limit(lim.EventsPerSecond))
		b.events.SetBurstAt(now, burst(lim.EventsPerSecond, l.minEvents))
		b.bytes.SetLimitAt(now, rate.Limit(lim.BytesPerSecond))
		b.bytes.SetBurstAt(now, burst(lim.BytesPerSecond, l.minBytes))
		b.limits, b.lastUsed = lim, now
		return b
	}
	if len(l.buckets) >= l.maxProducers {
		l.evictLocked(now)
	}
	b = &buckets{
		limits:   lim,
		events:   rate.NewLimiter(rate.Limit(lim.EventsPerSecond), burst(lim.EventsPerSecond, l.minEvents)),
		bytes:    rate.NewLimiter(rate.Limit(lim.BytesPerSecond), burst(lim.BytesPerSecond, l.minBytes)),
		lastUsed: now,
	}
	l.buckets[producer] = b
	return b
}

// evictLocked forgets the least recently used producer. Its buckets were refilling since;
// a producer forgotten and seen again starts with full buckets, at most one burst more than
// its quota.
func (l *Limiter) evictLocked(now time.Time) {
	oldest, oldestAt := "", now
	for p, b := range l.buckets {
		if !b.lastUsed.After(oldestAt) {
			oldest, oldestAt = p, b.lastUsed
		}
	}
	delete(l.buckets, oldest)
}

// Check reports, without taking anything, whether the producer's buckets have at least one
// event's token now; if not, how long until they do. The HTTP API asks before reading a
// body, so a producer over quota is refused without its body being read.
func (l *Limiter) Check(producer string, q apikey.Quota) (ok bool, retryAfter time.Duration) {
	now := l.now()
	b := l.bucketsOf(producer, q, now)
	if b.events.TokensAt(now) >= 1 && b.bytes.TokensAt(now) >= 1 {
		return true, 0
	}
	return false, max(wait(b.events, 1, now), wait(b.bytes, 1, now))
}

// Take takes events and bytes from the producer's buckets, both or neither. When they do not
// hold enough it takes nothing and says how long until they would.
func (l *Limiter) Take(producer string, q apikey.Quota, events, bytes int) (ok bool, retryAfter time.Duration) {
	now := l.now()
	b := l.bucketsOf(producer, q, now)
	re := b.events.ReserveN(now, events)
	rb := b.bytes.ReserveN(now, bytes)
	if re.OK() && rb.OK() && re.DelayFrom(now) == 0 && rb.DelayFrom(now) == 0 {
		return true, 0
	}
	retryAfter = max(delay(re, now), delay(rb, now))
	re.CancelAt(now)
	rb.CancelAt(now)
	return false, retryAfter
}

// wait is how long until lim holds n tokens.
func wait(lim *rate.Limiter, n float64, now time.Time) time.Duration {
	missing := n - lim.TokensAt(now)
	if missing <= 0 || lim.Limit() <= 0 {
		return 0
	}
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// delay is a reservation's wait; a request larger than the burst (which the burst's
// minimum prevents) would never fit, reported as a second.
func delay(r *rate.Reservation, now time.Time) time.Duration {
	if !r.OK() {
		return time.Second
	}
	return r.DelayFrom(now)
}
