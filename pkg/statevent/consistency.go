package statevent

import (
	"fmt"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// MaxBaseStealingAttempts bounds stolen bases and caught stealing in one game: the modern
// record is 6 stolen bases, so more than 10 of either is a data error, not a great day.
const MaxBaseStealingAttempts = 10

// CheckConsistency returns the baseball problems of a line that passed ValidateShape: counts
// that cannot all be true at once. It is meant only for such lines; on a line with missing
// counts it skips every rule that needs a missing count.
//
// Each rule yields at most one violation. When a narrower rule fires, the broader rule that
// contains it is not reported again (home_runs > hits already implies
// doubles + triples + home_runs > hits), so every violation points at a distinct problem.
//
// Reasons, with the field they name:
//
//	hits_exceed_at_bats                   batting.hits             H > AB
//	at_bat_outcomes_exceed_at_bats        batting.atBats           H + SO + GIDP > AB (each is a distinct at-bat result)
//	home_runs_exceed_hits                 batting.homeRuns         HR > H
//	extra_base_hits_exceed_hits           batting.hits             2B + 3B + HR > H
//	at_bats_exceed_plate_appearances      batting.atBats           AB > PA
//	plate_appearance_outcomes_exceed_plate_appearances
//	                                      batting.plateAppearances AB + BB + HBP + SH + SF > PA
//	intentional_walks_exceed_walks        batting.intentionalWalks IBB > BB
//	total_bases_mismatch                  batting.totalBases       TB given and != 1B + 2*2B + 3*3B + 4*HR
//	runs_exceed_plate_appearances         batting.runs             R > PA + 1
//	runs_below_home_runs                  batting.runs             R < HR (a home run scores the batter)
//	rbi_below_home_runs                   batting.rbi              RBI < HR (a home run drives in the batter)
//	stolen_bases_implausible              batting.stolenBases      SB > 10
//	caught_stealing_implausible           batting.caughtStealing   CS > 10
//
// Runs are bounded by PA + 1, not PA: a pinch runner scores without a plate appearance, and
// a player can enter a game as a pinch runner only once.
func CheckConsistency(ev *statsv1.StatEvent) []Violation {
	b := ev.GetBatting()
	if b == nil {
		return nil
	}
	var vs []Violation
	add := func(field, reason, format string, args ...any) {
		vs = append(vs, Violation{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
	}
	// has reports whether every given count is present, so a rule never reads a missing one.
	has := func(counts ...*int32) bool {
		for _, c := range counts {
			if c == nil {
				return false
			}
		}
		return true
	}
	pa, ab, r, h := b.PlateAppearances, b.AtBats, b.Runs, b.Hits
	d, t, hr, rbi := b.Doubles, b.Triples, b.HomeRuns, b.Rbi
	bb, ibb, so, hbp := b.BaseOnBalls, b.IntentionalWalks, b.StrikeOuts, b.HitByPitch
	sh, sf, sb, cs, gidp := b.SacBunts, b.SacFlies, b.StolenBases, b.CaughtStealing, b.GroundIntoDoublePlay

	if has(h, ab) {
		if *h > *ab {
			add("batting.hits", "hits_exceed_at_bats", "%d hits in %d at bats", *h, *ab)
		} else if has(so, gidp) && *h+*so+*gidp > *ab {
			add("batting.atBats", "at_bat_outcomes_exceed_at_bats",
				"hits (%d) + strikeouts (%d) + double plays grounded into (%d) exceed %d at bats", *h, *so, *gidp, *ab)
		}
	}

	extraBaseHitsOK := false
	if has(hr, h) {
		if *hr > *h {
			add("batting.homeRuns", "home_runs_exceed_hits", "%d home runs but only %d hits", *hr, *h)
		} else if has(d, t) {
			if *d+*t+*hr > *h {
				add("batting.hits", "extra_base_hits_exceed_hits",
					"doubles (%d) + triples (%d) + home runs (%d) exceed %d hits", *d, *t, *hr, *h)
			} else {
				extraBaseHitsOK = true
			}
		}
	}

	if has(ab, pa) {
		if *ab > *pa {
			add("batting.atBats", "at_bats_exceed_plate_appearances", "%d at bats in %d plate appearances", *ab, *pa)
		} else if has(bb, hbp, sh, sf) && *ab+*bb+*hbp+*sh+*sf > *pa {
			add("batting.plateAppearances", "plate_appearance_outcomes_exceed_plate_appearances",
				"at bats (%d) + walks (%d) + hit by pitch (%d) + sacrifice bunts (%d) + sacrifice flies (%d) exceed %d plate appearances",
				*ab, *bb, *hbp, *sh, *sf, *pa)
		}
	}

	if has(ibb, bb) && *ibb > *bb {
		add("batting.intentionalWalks", "intentional_walks_exceed_walks", "%d intentional walks but only %d walks", *ibb, *bb)
	}

	// Total bases can only be checked when singles are known to be non-negative.
	if tb := b.TotalBases; tb != nil && extraBaseHitsOK {
		if want := TotalBases(*h, *d, *t, *hr); *tb != want {
			add("batting.totalBases", "total_bases_mismatch",
				"total bases %d differ from 1B + 2*2B + 3*3B + 4*HR = %d", *tb, want)
		}
	}

	if has(r, pa) && *r > *pa+1 {
		add("batting.runs", "runs_exceed_plate_appearances",
			"%d runs in %d plate appearances (at most one more run than plate appearances, as a pinch runner)", *r, *pa)
	}
	if has(r, hr) && *r < *hr {
		add("batting.runs", "runs_below_home_runs", "%d runs but %d home runs: a home run scores the batter", *r, *hr)
	}
	if has(rbi, hr) && *rbi < *hr {
		add("batting.rbi", "rbi_below_home_runs", "%d runs batted in but %d home runs: a home run drives in the batter", *rbi, *hr)
	}
	if has(sb) && *sb > MaxBaseStealingAttempts {
		add("batting.stolenBases", "stolen_bases_implausible", "%d stolen bases in one game (more than %d)", *sb, MaxBaseStealingAttempts)
	}
	if has(cs) && *cs > MaxBaseStealingAttempts {
		add("batting.caughtStealing", "caught_stealing_implausible", "caught stealing %d times in one game (more than %d)", *cs, MaxBaseStealingAttempts)
	}
	return vs
}

// Singles derives singles from hits and extra-base hits: H - 2B - 3B - HR.
func Singles(hits, doubles, triples, homeRuns int32) int32 {
	return hits - doubles - triples - homeRuns
}

// TotalBases derives total bases: 1B + 2*2B + 3*3B + 4*HR, which is H + 2B + 2*3B + 3*HR.
func TotalBases(hits, doubles, triples, homeRuns int32) int32 {
	return Singles(hits, doubles, triples, homeRuns) + 2*doubles + 3*triples + 4*homeRuns
}
