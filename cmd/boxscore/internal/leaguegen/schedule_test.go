package leaguegen

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The scheduler's search is bounded; across seeds and seasons it places every series, and the
// season ends by early October (most seeds: the last Sunday of September).
func TestScheduleFitsEverySeedTried(t *testing.T) {
	for _, season := range []int{2023, 2024, 2025, 2026} {
		for seed := uint64(1); seed <= 5; seed++ {
			games, err := schedule(season, rand.New(rand.NewPCG(seed, uint64(season))))
			if err != nil {
				t.Fatalf("season %d seed %d: %v", season, seed, err)
			}
			first, last := games[0].Date, games[len(games)-1].Date
			if first.Month() != time.March || first.Weekday() != time.Thursday || first.Day() < 25 {
				t.Errorf("season %d opens %s", season, first.Format(time.DateOnly))
			}
			if end := time.Date(season, time.October, 6, 0, 0, 0, 0, time.UTC); last.After(end) {
				t.Errorf("season %d seed %d ends %s", season, seed, last.Format(time.DateOnly))
			}
			if len(games) != 2430 {
				t.Errorf("season %d seed %d: %d games", season, seed, len(games))
			}
		}
	}
}
