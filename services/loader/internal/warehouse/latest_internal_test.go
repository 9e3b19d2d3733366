package warehouse

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// latestPerKeyReference is latestPerKey as a map of each key's best element, then sorted:
// the straightforward rule the in-place version must match.
func latestPerKeyReference(rows []FactRow) []FactRow {
	best := map[FactKey]FactRow{}
	for _, r := range rows {
		b, seen := best[r.Key()]
		if !seen || compareVersions(r.Version, r.EventID, b.Version, b.EventID) > 0 {
			best[r.Key()] = r
		}
	}
	out := make([]FactRow, 0, len(best))
	for _, r := range best {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b FactRow) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

// TestLatestPerKeyMatchesReference checks, over random batches with repeated keys, equal
// versions and equal (version, event_id) pairs, that latestPerKey keeps the same element of
// each key as the reference (the first of equals: PlayerName records the input position)
// and sorts by key.
func TestLatestPerKeyMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 500))
	for round := range 300 {
		n := rng.IntN(60)
		rows := make([]FactRow, n)
		for i := range rows {
			rows[i] = FactRow{
				PlayerID:   int64(rng.IntN(4) + 1),
				GameID:     "g" + strconv.Itoa(rng.IntN(4)),
				Version:    int64(rng.IntN(3)),
				EventID:    "e" + strconv.Itoa(rng.IntN(3)),
				PlayerName: strconv.Itoa(i),
			}
		}
		want := latestPerKeyReference(slices.Clone(rows))
		got := latestPerKey(rows)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d rows kept, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i].Key() != want[i].Key() || got[i].PlayerName != want[i].PlayerName {
				t.Fatalf("round %d, row %d: got %v (input %s), want %v (input %s)",
					round, i, got[i].Key(), got[i].PlayerName, want[i].Key(), want[i].PlayerName)
			}
		}
	}
}
