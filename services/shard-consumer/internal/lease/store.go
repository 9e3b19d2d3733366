package lease

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Lease is one row of the lease table as read.
type Lease struct {
	ShardID string
	// Owner is the worker holding the lease; "" when nobody does.
	Owner string
	// Counter grows by one on every take, renewal and release.
	Counter int64
}

// Store keeps the leases of every stream. Every change is conditional on the counter the
// caller last saw (and, for renewals and releases, on the caller being the owner) and
// increments it: that is the whole of the fencing, so every implementation must keep
// exactly these semantics (PostgresStore and MemoryStore pass the same contract tests).
type Store interface {
	// Ensure creates an unowned lease (counter 0) for every listed shard that has none;
	// existing leases are left as they are.
	Ensure(ctx context.Context, stream string, shardIDs []string) error
	// List returns every lease of the stream, ordered by shard id.
	List(ctx context.Context, stream string) ([]Lease, error)
	// Take makes owner the lease's owner if its counter still equals observedCounter,
	// whoever owns it, and returns the new counter. ok is false when the counter moved on
	// (or the lease does not exist).
	Take(ctx context.Context, stream, shardID, owner string, observedCounter int64) (counter int64, ok bool, err error)
	// Renew increments the counter if owner still owns the lease at counter, and returns
	// the new counter. ok is false when the lease was taken or released since.
	Renew(ctx context.Context, stream, shardID, owner string, counter int64) (newCounter int64, ok bool, err error)
	// Release leaves the lease unowned (and increments the counter) if owner still owns
	// it at counter. ok is false when it did not.
	Release(ctx context.Context, stream, shardID, owner string, counter int64) (ok bool, err error)
	// Raise sets the counter to max(counter, above)+1 if owner still owns the lease at
	// counter, and returns the new counter: a renewal that also lifts the counter above
	// a fencing token found elsewhere (the warehouse's, after the lease store was reset).
	// ok is false when the lease was taken or released since.
	Raise(ctx context.Context, stream, shardID, owner string, counter, above int64) (newCounter int64, ok bool, err error)
}

var errNoOwner = errors.New("owner must not be empty")

// MemoryStore is a Store in memory with the same conditional semantics as PostgresStore,
// for simulations and single-process use. It is safe for concurrent use.
type MemoryStore struct {
	mu      sync.Mutex
	streams map[string]map[string]*Lease
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{streams: map[string]map[string]*Lease{}}
}

// Ensure implements Store.
func (s *MemoryStore) Ensure(_ context.Context, stream string, shardIDs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	leases := s.streams[stream]
	if leases == nil {
		leases = map[string]*Lease{}
		s.streams[stream] = leases
	}
	for _, id := range shardIDs {
		if _, ok := leases[id]; !ok {
			leases[id] = &Lease{ShardID: id}
		}
	}
	return nil
}

// List implements Store.
func (s *MemoryStore) List(_ context.Context, stream string) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lease, 0, len(s.streams[stream]))
	for _, l := range s.streams[stream] {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardID < out[j].ShardID })
	return out, nil
}

// Take implements Store.
func (s *MemoryStore) Take(_ context.Context, stream, shardID, owner string, observedCounter int64) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("take lease of shard %s: %w", shardID, errNoOwner)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.streams[stream][shardID]
	if !ok || l.Counter != observedCounter {
		return 0, false, nil
	}
	l.Owner = owner
	l.Counter++
	return l.Counter, true, nil
}

// Renew implements Store.
func (s *MemoryStore) Renew(_ context.Context, stream, shardID, owner string, counter int64) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("renew lease of shard %s: %w", shardID, errNoOwner)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.streams[stream][shardID]
	if !ok || l.Owner != owner || l.Counter != counter {
		return 0, false, nil
	}
	l.Counter++
	return l.Counter, true, nil
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, stream, shardID, owner string, counter int64) (bool, error) {
	if owner == "" {
		return false, fmt.Errorf("release lease of shard %s: %w", shardID, errNoOwner)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.streams[stream][shardID]
	if !ok || l.Owner != owner || l.Counter != counter {
		return false, nil
	}
	l.Owner = ""
	l.Counter++
	return true, nil
}

// Raise implements Store.
func (s *MemoryStore) Raise(_ context.Context, stream, shardID, owner string, counter, above int64) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("raise lease of shard %s: %w", shardID, errNoOwner)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.streams[stream][shardID]
	if !ok || l.Owner != owner || l.Counter != counter {
		return 0, false, nil
	}
	l.Counter = max(l.Counter, above) + 1
	return l.Counter, true, nil
}
