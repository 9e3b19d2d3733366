package leaguegen

import (
	"math/rand/v2"
)

// outcome of a plate appearance.
type outcome int

const (
	outWalk outcome = iota
	outIntentionalWalk
	outHitByPitch
	outStrikeOut
	outSingle
	outDouble
	outTriple
	outHomeRun
	outBunt // a sacrifice bunt when someone is on base and there are fewer than two outs
	outInPlay
	numOutcomes
)

// outcomeRates are the probabilities of each outcome per plate appearance, cumulated.
type outcomeRates [numOutcomes]float64

// League-average rates per plate appearance, tuned so that the simulated league hits about
// .245/.315/.405 (the 2023-2024 major leagues) once double plays and sacrifice flies, which
// come out of balls in play by the base-out state, are counted.
var leagueRates = [numOutcomes]float64{
	outWalk:            0.082,
	outIntentionalWalk: 0.0025,
	outHitByPitch:      0.011,
	outStrikeOut:       0.224,
	outSingle:          0.140,
	outDouble:          0.043,
	outTriple:          0.004,
	outHomeRun:         0.030,
	outBunt:            0.006,
}

func cumulate(p [numOutcomes]float64) outcomeRates {
	var sum float64
	for i := 0; i < int(outInPlay); i++ {
		sum += p[i]
	}
	p[outInPlay] = max(0, 1-sum)
	var c outcomeRates
	acc := 0.0
	for i := range p {
		acc += p[i]
		c[i] = acc
	}
	return c
}

// hitterRates draws a position player's talent around the league average, scaled by quality
// (regulars above 1, the bench and call-ups below).
func hitterRates(rng *rand.Rand, quality float64) (outcomeRates, float64) {
	p := leagueRates
	jitter := func(sd float64) float64 { return max(0.3, 1+rng.NormFloat64()*sd) }
	contact := jitter(0.10) * quality
	power := jitter(0.35) * quality * quality
	eye := jitter(0.25) * quality
	strikeouts := jitter(0.22) / quality
	speed := max(0.2, min(2, 1+rng.NormFloat64()*0.45))
	p[outWalk] *= eye
	p[outIntentionalWalk] *= eye * power
	p[outStrikeOut] *= strikeouts
	p[outSingle] *= contact
	p[outDouble] *= contact * max(0.5, power)
	p[outTriple] *= contact * speed
	p[outHomeRun] *= power
	return cumulate(p), speed
}

// pitcherRates: a pitcher at the plate strikes out half the time and rarely hits.
func pitcherRates() outcomeRates {
	p := leagueRates
	p[outWalk] *= 0.4
	p[outIntentionalWalk] = 0
	p[outStrikeOut] = 0.45
	p[outSingle] *= 0.5
	p[outDouble] *= 0.3
	p[outTriple] = 0
	p[outHomeRun] *= 0.1
	p[outBunt] = 0.05
	return cumulate(p)
}

// line is a player's batting line in one game.
type line struct {
	player                                                              *Player
	slot                                                                int // batting-order slot 0-8
	order                                                               int // order of appearance, for a stable file order
	PA, AB, R, H, D, T, HR, RBI, BB, IBB, SO, HBP, SH, SF, SB, CS, GIDP int
}

// teamGame is one team's side of a game: its lines, and the totals counted play by play,
// apart from the lines, so that the two can be checked against each other.
type teamGame struct {
	lines  []*line
	totals Totals
	runs   int
}

// sim plays games.
type sim struct {
	rng *rand.Rand
}

type side struct {
	tg      *teamGame
	slots   [9]*line // current occupant of each batting-order slot
	next    int      // slot due up
	bench   []*Player
	pitcher []*Player
	// pitcherBats: in this game a pitcher pinch-hits once (the designated hitter was lost).
	pitcherBats bool
}

func (s *sim) newSide(lineup, bench, pitchers []*Player) *side {
	sd := &side{tg: &teamGame{}, bench: bench, pitcher: pitchers}
	for i, p := range lineup {
		l := &line{player: p, slot: i, order: len(sd.tg.lines)}
		sd.slots[i] = l
		sd.tg.lines = append(sd.tg.lines, l)
	}
	sd.pitcherBats = s.rng.Float64() < 0.003
	return sd
}

// substitute puts p in slot i for the rest of the game.
func (sd *side) substitute(i int, p *Player) {
	l := &line{player: p, slot: i, order: len(sd.tg.lines)}
	sd.slots[i] = l
	sd.tg.lines = append(sd.tg.lines, l)
}

// play simulates a game to its end: nine innings, the bottom of the ninth only when the home
// team trails, extra innings with a runner on second, a walk-off ending the game at once.
func (s *sim) play(away, home *side) {
	for inning := 1; ; inning++ {
		s.halfInning(away, inning, nil)
		if inning >= 9 && home.tg.runs > away.tg.runs {
			return
		}
		walkOff := func() bool { return inning >= 9 && home.tg.runs > away.tg.runs }
		s.halfInning(home, inning, walkOff)
		if inning >= 9 && home.tg.runs != away.tg.runs {
			return
		}
		if inning >= 30 { // never reached in practice; a game must end
			return
		}
	}
}

func (s *sim) halfInning(sd *side, inning int, walkOff func() bool) {
	var bases [3]*line // runners, as the line that scores the run
	outs := 0
	if inning >= 10 {
		bases[1] = sd.slots[(sd.next+8)%9] // the automatic runner: who made the last out
	}
	score := func(l *line, rbi *int) {
		l.R++
		sd.tg.totals.Runs++
		sd.tg.runs++
		if rbi != nil {
			*rbi++
		}
	}
	for outs < 3 {
		if walkOff != nil && walkOff() {
			return
		}
		// Late-game substitutions from the bench: pinch hitters, and defensive replacements
		// who may never come up (a line with no plate appearance, as box scores list them).
		if inning >= 6 && len(sd.bench) > 0 && s.rng.Float64() < 0.16 {
			sd.substitute(sd.next, sd.bench[0])
			sd.bench = sd.bench[1:]
		}
		if outs == 0 && inning >= 7 && len(sd.bench) > 0 && s.rng.Float64() < 0.1 {
			sd.substitute((sd.next+1+s.rng.IntN(8))%9, sd.bench[0])
			sd.bench = sd.bench[1:]
		}
		if sd.pitcherBats && inning >= 8 && len(sd.pitcher) > 0 {
			sd.pitcherBats = false
			sd.substitute(sd.next, sd.pitcher[s.rng.IntN(len(sd.pitcher))])
		}
		// A steal attempt by a runner on first with second open.
		if r := bases[0]; r != nil && bases[1] == nil && outs < 2 && s.rng.Float64() < 0.14*r.player.speed {
			bases[0] = nil
			if s.rng.Float64() < 0.79 {
				r.SB++
				sd.tg.totals.StolenBases++
				bases[1] = r
			} else {
				r.CS++
				sd.tg.totals.CaughtStealing++
				outs++
				continue
			}
		}
		b := sd.slots[sd.next]
		sd.next = (sd.next + 1) % 9
		b.PA++
		sd.tg.totals.PlateAppearances++
		rbi := 0
		u := s.rng.Float64()
		o := outcome(0)
		for o < outInPlay && u >= b.player.rates[o] {
			o++
		}
		occupied := bases[0] != nil || bases[1] != nil || bases[2] != nil
		if o == outBunt && (!occupied || outs == 2) {
			o = outInPlay
		}
		switch o {
		case outWalk, outIntentionalWalk, outHitByPitch:
			// Forced runners move up one base.
			if bases[0] != nil {
				if bases[1] != nil {
					if bases[2] != nil {
						score(bases[2], &rbi)
					}
					bases[2] = bases[1]
				}
				bases[1] = bases[0]
			}
			bases[0] = b
			if o == outHitByPitch {
				b.HBP++
				sd.tg.totals.HitByPitch++
			} else {
				b.BB++
				sd.tg.totals.BaseOnBalls++
				if o == outIntentionalWalk {
					b.IBB++
					sd.tg.totals.IntentionalWalks++
				}
			}
		case outStrikeOut:
			b.AB++
			b.SO++
			sd.tg.totals.AtBats++
			sd.tg.totals.StrikeOuts++
			outs++
		case outSingle, outDouble, outTriple, outHomeRun:
			b.AB++
			b.H++
			sd.tg.totals.AtBats++
			sd.tg.totals.Hits++
			switch o {
			case outSingle:
				if bases[2] != nil {
					score(bases[2], &rbi)
				}
				bases[2] = nil
				if bases[1] != nil {
					if s.rng.Float64() < 0.6 {
						score(bases[1], &rbi)
					} else {
						bases[2] = bases[1]
					}
				}
				bases[1] = nil
				if bases[0] != nil {
					if bases[2] == nil && s.rng.Float64() < 0.28 {
						bases[2] = bases[0]
					} else {
						bases[1] = bases[0]
					}
				}
				bases[0] = b
			case outDouble:
				b.D++
				sd.tg.totals.Doubles++
				for _, i := range []int{2, 1} {
					if bases[i] != nil {
						score(bases[i], &rbi)
						bases[i] = nil
					}
				}
				if bases[0] != nil {
					if s.rng.Float64() < 0.4 {
						score(bases[0], &rbi)
					} else {
						bases[2] = bases[0]
					}
					bases[0] = nil
				}
				bases[1] = b
			case outTriple:
				b.T++
				sd.tg.totals.Triples++
				for i := 2; i >= 0; i-- {
					if bases[i] != nil {
						score(bases[i], &rbi)
						bases[i] = nil
					}
				}
				bases[2] = b
			case outHomeRun:
				b.HR++
				sd.tg.totals.HomeRuns++
				for i := 2; i >= 0; i-- {
					if bases[i] != nil {
						score(bases[i], &rbi)
						bases[i] = nil
					}
				}
				score(b, &rbi)
			}
		case outBunt:
			b.SH++
			sd.tg.totals.SacBunts++
			outs++
			if bases[2] != nil && outs < 3 {
				score(bases[2], &rbi)
				bases[2] = nil
			}
			if bases[1] != nil {
				bases[2], bases[1] = bases[1], nil
			}
			if bases[0] != nil {
				bases[1], bases[0] = bases[0], nil
			}
		case outInPlay:
			ground := s.rng.Float64() < 0.55
			switch {
			case ground && bases[0] != nil && outs < 2 && s.rng.Float64() < 0.3:
				// A double play: the batter and the runner from first are out; no RBI.
				b.AB++
				b.GIDP++
				sd.tg.totals.AtBats++
				sd.tg.totals.GroundIntoDoublePlay++
				bases[0] = nil
				outs += 2
				if outs < 3 && bases[2] != nil {
					score(bases[2], nil)
					bases[2] = nil
				}
				if bases[1] != nil {
					bases[2], bases[1] = bases[1], nil
				}
			case !ground && bases[2] != nil && outs < 2 && s.rng.Float64() < 0.7:
				// A sacrifice fly: no at bat.
				b.SF++
				sd.tg.totals.SacFlies++
				outs++
				score(bases[2], &rbi)
				bases[2] = nil
			default:
				b.AB++
				sd.tg.totals.AtBats++
				outs++
				if ground && outs < 3 {
					if bases[2] != nil && s.rng.Float64() < 0.4 {
						score(bases[2], &rbi)
						bases[2] = nil
					}
					if bases[1] != nil && bases[2] == nil && s.rng.Float64() < 0.5 {
						bases[2], bases[1] = bases[1], nil
					}
				}
			}
		}
		b.RBI += rbi
		sd.tg.totals.RBI += rbi
	}
}
