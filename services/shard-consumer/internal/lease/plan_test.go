package lease

import (
	"testing"
	"time"
)

// planner is a manager whose planLocked is driven by hand: leases as read, at times of a
// fake clock.
func planner(t *testing.T, me string, shards []string) (*Manager, *FakeClock) {
	t.Helper()
	clock := NewFakeClock(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))
	m, err := NewManager(Config{Stream: "batting", WorkerID: me}, NewMemoryStore(), clock, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.SetShards(shards)
	return m, clock
}

func (m *Manager) plan(leases []Lease) takePlan {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.planLocked(leases, m.clock.Now())
}

// A silent owner — every lease unchanged for 2/3 of the failover time — is not counted live:
// the others' shares cover its leases before they expire, and nobody steals meanwhile.
func TestPlanSilentOwnerIsNotCountedLive(t *testing.T) {
	ids := shardIDs(8)
	m, clock := planner(t, "worker-c", ids)
	read := func(aCounter int64) []Lease {
		var ls []Lease
		for i, id := range ids {
			if i < 4 {
				ls = append(ls, Lease{ShardID: id, Owner: "worker-a", Counter: aCounter})
			} else {
				ls = append(ls, Lease{ShardID: id, Owner: "worker-b", Counter: 7})
			}
		}
		return ls
	}
	// Both live: three workers, 8 leases, c holds none: it steals one from the most loaded.
	p := m.plan(read(1))
	if p.want != 3 || p.steal == nil {
		t.Fatalf("with a and b live: want %d, steal %v; want 3 and a steal", p.want, p.steal)
	}
	// b renews no more; a does, every renew interval.
	var counter int64 = 1
	for clock.Now().Sub(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)) < m.lostAfter {
		clock.Advance(m.cfg.TakeInterval)
		counter++
		p = m.plan(read(counter))
	}
	if p.want != 4 || p.steal != nil || len(p.available) != 0 {
		t.Fatalf("b silent for %s: want %d, steal %v, available %d; want a share of 4 of 2 workers, no steal, nothing available yet",
			m.lostAfter, p.want, p.steal, len(p.available))
	}
	// b's leases expire: c takes its full share at once.
	for clock.Now().Sub(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)) < m.cfg.FailoverTime {
		clock.Advance(m.cfg.TakeInterval)
		counter++
		p = m.plan(read(counter))
	}
	if p.want != 4 || len(p.available) != 4 {
		t.Fatalf("b expired: want %d, available %d; want 4 and 4", p.want, len(p.available))
	}
}

// Leases under this worker's own id that it does not hold (a predecessor under the same
// identity) are taken at once, all of them, whatever the share.
func TestPlanOwnLeasesTakenBackWhateverTheShare(t *testing.T) {
	ids := shardIDs(8)
	m, _ := planner(t, "worker-c", ids)
	var ls []Lease
	for i, id := range ids {
		owner := "worker-c"
		if i >= 6 {
			owner = "worker-a"
		}
		ls = append(ls, Lease{ShardID: id, Owner: owner, Counter: 40 + int64(i)})
	}
	p := m.plan(ls)
	if len(p.orphans) != 6 {
		t.Fatalf("%d of the 6 own leases planned whatever the share (share %d), want all", len(p.orphans), p.want)
	}
	for _, l := range p.orphans {
		if l.Owner != "worker-c" {
			t.Errorf("planned %s of %s as taken whatever the share", l.ShardID, l.Owner)
		}
	}
}
