package quota

import (
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

func newTestLimiter(now *time.Time) *Limiter {
	l := New(Limits{EventsPerSecond: 100, BytesPerSecond: 1000}, 10, 100, 3)
	l.now = func() time.Time { return *now }
	return l
}

func TestProducersHaveTheirOwnBuckets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newTestLimiter(&now)
	slow := apikey.Quota{EventsPerSecond: 2}
	// The burst is one full request (10 events) even for a 2 events/s producer.
	if ok, _ := l.Take("a", slow, 10, 10); !ok {
		t.Fatal("a's first full request refused")
	}
	ok, wait := l.Take("a", slow, 4, 10)
	if ok || wait != 2*time.Second {
		t.Fatalf("a over quota: %t, wait %s; want refused, 2s (4 events at 2/s)", ok, wait)
	}
	if ok, _ := l.Check("a", slow); ok {
		t.Error("Check says a has room")
	}
	// b is not slowed by a.
	for i := range 10 {
		if ok, _ := l.Take("b", apikey.Quota{}, 10, 50); !ok {
			t.Fatalf("b's request %d refused", i)
		}
	}
	// A refused request took nothing: after 2 s a's 4 events fit.
	now = now.Add(2 * time.Second)
	if ok, _ := l.Take("a", slow, 4, 10); !ok {
		t.Error("a's request refused after its wait")
	}
}

func TestBytesQuotaAndEviction(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newTestLimiter(&now)
	if ok, _ := l.Take("a", apikey.Quota{}, 1, 1000); !ok {
		t.Fatal("one second of bytes refused")
	}
	if ok, wait := l.Take("a", apikey.Quota{}, 1, 500); ok || wait != 500*time.Millisecond {
		t.Fatalf("over the bytes quota: %t, %s; want refused for 500ms", ok, wait)
	}
	for _, p := range []string{"b", "c", "d"} {
		now = now.Add(time.Millisecond)
		l.Take(p, apikey.Quota{}, 1, 1)
	}
	if len(l.buckets) > 3 {
		t.Errorf("%d producers tracked, want at most 3", len(l.buckets))
	}
	if _, ok := l.buckets["a"]; ok {
		t.Error("the least recently used producer was kept")
	}
}
