package statevent

import (
	"testing"

	"github.com/google/uuid"
)

func TestNewEventID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		s := NewEventID()
		id, err := uuid.Parse(s)
		if err != nil {
			t.Fatalf("NewEventID() = %q: %v", s, err)
		}
		if id.Version() != 7 {
			t.Fatalf("NewEventID() = %q is version %d, want 7", s, id.Version())
		}
		if seen[s] {
			t.Fatalf("NewEventID() repeated %q", s)
		}
		seen[s] = true
		// uuid's V7 is monotonic within a process, so the strings sort by creation.
		if s <= prev {
			t.Fatalf("NewEventID() = %q after %q: not increasing", s, prev)
		}
		prev = s
		ev := validEvent()
		ev.EventId = s
		if vs := ValidateShape(ev); len(vs) != 0 {
			t.Fatalf("generated id %q fails ValidateShape: %v", s, vs)
		}
	}
}

func TestEventIDNamespace(t *testing.T) {
	want := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://boxscore.dev/ns/stat-event"))
	if eventIDNamespace != want {
		t.Fatalf("eventIDNamespace = %s, want %s as documented", eventIDNamespace, want)
	}
}

func TestDeterministicEventID(t *testing.T) {
	// Computed once and pinned: if this changes, replays would stop deduplicating.
	const want = "867ace91-eb65-5f10-9407-820028e57b24" // also python3 uuid.uuid5(ns, "660271:SDN202403200:1")
	if got := DeterministicEventID(660271, "SDN202403200", 1); got != want {
		t.Fatalf("DeterministicEventID(660271, SDN202403200, 1) = %s, want %s", got, want)
	}
	id := uuid.MustParse(DeterministicEventID(660271, "SDN202403200", 1))
	if id.Version() != 5 {
		t.Errorf("version = %d, want 5", id.Version())
	}

	inputs := []struct {
		player  int64
		game    string
		version int64
	}{
		{660271, "SDN202403200", 1},
		{660271, "SDN202403200", 2},
		{660272, "SDN202403200", 1},
		{660271, "SDN202403201", 1},
		{660271, "745444", 1},
		// Would collide with a naive concatenation without separators.
		{66027, "1SDN202403200", 1},
		{660271, "SDN20240320", 1},
		{660271, "SDN202403200:1", 1},
	}
	seen := map[string]int{}
	for n, in := range inputs {
		got := DeterministicEventID(in.player, in.game, in.version)
		if again := DeterministicEventID(in.player, in.game, in.version); again != got {
			t.Errorf("input %d: %s then %s", n, got, again)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("inputs %d and %d share id %s", prev, n, got)
		}
		seen[got] = n
	}
}
