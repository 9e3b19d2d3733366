package leaguegen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// FirstPlayerID is the id of the first simulated player. Real MLB ids have six digits, so
// the simulated ones (seven digits) never name a real player.
const FirstPlayerID = 9_000_001

// Player is a simulated player.
type Player struct {
	ID      int64
	Name    string
	Pitcher bool
	rates   outcomeRates
	speed   float64 // 0.2 slow to 2 fast: steal attempts and triples
}

// Per-team roster sizes: 26 active (13 position players, 13 pitchers) and a minor-league
// depth of call-ups, so about 1,290 players in all.
const (
	activeHitters    = 13
	activePitchers   = 13
	regulars         = 9
	depthHitters     = 8
	depthPitchers    = 9
	playersPerTeam   = activeHitters + activePitchers + depthHitters + depthPitchers
	injuryRatePerDay = 0.003
)

// roster is a team's players on one day. Hitters are ranked: the first nine available ones
// start, the rest sit on the bench.
type roster struct {
	hitters, pitchers []*Player // active
	depthH, depthP    []*Player // minor leagues
	injured           []injury
}

type injury struct {
	player   *Player
	rank     int // place among the active hitters or pitchers before the injury
	returns  time.Time
	replaced *Player
}

var firstNames = []string{
	"Aaron", "Adrian", "Alex", "Andres", "Angel", "Austin", "Ben", "Blake", "Bobby", "Brandon",
	"Brent", "Bryce", "Caleb", "Carlos", "Chase", "Chris", "Cody", "Colton", "Connor", "Corey",
	"Dallas", "Daniel", "Dante", "David", "Diego", "Dylan", "Eduardo", "Eli", "Elias", "Emilio",
	"Eric", "Ethan", "Evan", "Felix", "Francisco", "Gabriel", "Garrett", "Gavin", "Hector", "Hunter",
	"Ian", "Isaac", "Jack", "Jacob", "Jake", "Javier", "Jesus", "Joel", "Jonah", "Jorge",
	"Jose", "Josh", "Juan", "Julio", "Kevin", "Kyle", "Landon", "Leo", "Logan", "Luis",
	"Manuel", "Marco", "Mason", "Matt", "Miguel", "Nate", "Nick", "Noah", "Oscar", "Owen",
	"Pablo", "Pedro", "Rafael", "Ramon", "Riley", "Ryan", "Samuel", "Sean", "Seth", "Shane",
	"Taylor", "Trent", "Tyler", "Victor", "Wade", "Wes", "Will", "Xavier", "Yusei", "Zach",
}

var lastNames = []string{
	"Abbott", "Acosta", "Aldana", "Alvarado", "Arroyo", "Baker", "Barnes", "Beltran", "Bishop", "Boone",
	"Bradley", "Brennan", "Burke", "Cabrera", "Calloway", "Castillo", "Chandler", "Cole", "Collins", "Cruz",
	"Dalton", "Delgado", "Duran", "Ellison", "Espinoza", "Fletcher", "Flores", "Foster", "Fuentes", "Garza",
	"Gibson", "Guerra", "Hale", "Harper", "Hayes", "Herrera", "Hobbs", "Ibarra", "Jennings", "Kendall",
	"Kimura", "Lawson", "Ledesma", "Lowry", "Maddox", "Marsh", "Medina", "Mercado", "Molina", "Navarro",
	"Nolan", "Ochoa", "Ortega", "Pace", "Padilla", "Palmer", "Quinn", "Ramos", "Reyes", "Rios",
	"Rowe", "Salazar", "Santana", "Sawyer", "Serrano", "Shaw", "Soto", "Sutton", "Tanaka", "Tate",
	"Torres", "Tucker", "Underwood", "Valdez", "Vance", "Vargas", "Walsh", "Warren", "Webb", "Whitaker",
	"Wilder", "Yamada", "Yates", "Zamora", "Zeller", "Crane", "Hollis", "Lindqvist", "Moreau", "Okafor",
}

// newPlayers makes every team's players: unique names, ids from FirstPlayerID, talent drawn
// around the league average (regulars above it, bench and depth below).
func newPlayers(rng *rand.Rand) ([30]roster, []*Player) {
	var rosters [30]roster
	var all []*Player
	used := map[string]bool{}
	next := int64(FirstPlayerID)
	newPlayer := func(pitcher bool, quality float64) *Player {
		var name string
		for {
			name = firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))]
			if !used[name] {
				break
			}
			// Names are unique within a season: a second "Jose Ramos" gets a suffix.
			name = fmt.Sprintf("%s %s", name, "Jr.")
			if !used[name] {
				break
			}
		}
		used[name] = true
		p := &Player{ID: next, Name: name, Pitcher: pitcher}
		next++
		if pitcher {
			p.rates = pitcherRates()
			p.speed = 0.3
		} else {
			p.rates, p.speed = hitterRates(rng, quality)
		}
		all = append(all, p)
		return p
	}
	for t := range rosters {
		r := &rosters[t]
		for i := 0; i < activeHitters; i++ {
			q := 1.03
			if i >= regulars {
				q = 0.93
			}
			r.hitters = append(r.hitters, newPlayer(false, q))
		}
		for i := 0; i < activePitchers; i++ {
			r.pitchers = append(r.pitchers, newPlayer(true, 0))
		}
		for i := 0; i < depthHitters; i++ {
			r.depthH = append(r.depthH, newPlayer(false, 0.9))
		}
		for i := 0; i < depthPitchers; i++ {
			r.depthP = append(r.depthP, newPlayer(true, 0))
		}
	}
	return rosters, all
}

// Transaction is a roster move: a trade, an injury (to the injured list) or a return.
type Transaction struct {
	Date     time.Time
	Kind     string // "trade", "injured", "activated"
	PlayerID int64
	From, To int // team indexes; for an injury or a return, From == To
}

// dailyMoves applies the day's injuries, returns and call-ups to a team's roster.
func (r *roster) dailyMoves(rng *rand.Rand, team int, date time.Time, log *[]Transaction) {
	// Returns first: the player takes back his rank, his replacement goes down.
	kept := r.injured[:0]
	for _, inj := range r.injured {
		if date.Before(inj.returns) {
			kept = append(kept, inj)
			continue
		}
		list, depth := &r.hitters, &r.depthH
		if inj.player.Pitcher {
			list, depth = &r.pitchers, &r.depthP
		}
		if i := indexOf(*list, inj.replaced); i >= 0 {
			*list = append((*list)[:i], (*list)[i+1:]...)
			*depth = append(*depth, inj.replaced)
		} else {
			// The replacement was traded or hurt meanwhile: the last of the bench goes down.
			last := (*list)[len(*list)-1]
			*list = (*list)[:len(*list)-1]
			*depth = append(*depth, last)
		}
		rank := min(inj.rank, len(*list))
		*list = append((*list)[:rank], append([]*Player{inj.player}, (*list)[rank:]...)...)
		*log = append(*log, Transaction{Date: date, Kind: "activated", PlayerID: inj.player.ID, From: team, To: team})
	}
	r.injured = kept
	for _, pitchers := range []bool{false, true} {
		list, depth := &r.hitters, &r.depthH
		if pitchers {
			list, depth = &r.pitchers, &r.depthP
		}
		for i := 0; i < len(*list); i++ {
			if len(*depth) == 0 || rng.Float64() >= injuryRatePerDay {
				continue
			}
			p := (*list)[i]
			up := (*depth)[0]
			*depth = (*depth)[1:]
			r.injured = append(r.injured, injury{player: p, rank: i, returns: date.AddDate(0, 0, 10+rng.IntN(50)), replaced: up})
			// The call-up takes the last place; everyone below the injured player moves up.
			*list = append(append((*list)[:i:i], (*list)[i+1:]...), up)
			*log = append(*log, Transaction{Date: date, Kind: "injured", PlayerID: p.ID, From: team, To: team})
		}
	}
}

func indexOf(list []*Player, p *Player) int {
	for i, q := range list {
		if q == p {
			return i
		}
	}
	return -1
}

// trade swaps two active hitters between teams a and b; each takes the other's rank.
func trade(rosters *[30]roster, a, b int, rng *rand.Rand, date time.Time, log *[]Transaction) {
	ra, rb := &rosters[a], &rosters[b]
	i := rng.IntN(len(ra.hitters))
	j := rng.IntN(len(rb.hitters))
	pa, pb := ra.hitters[i], rb.hitters[j]
	ra.hitters[i], rb.hitters[j] = pb, pa
	*log = append(*log,
		Transaction{Date: date, Kind: "trade", PlayerID: pa.ID, From: a, To: b},
		Transaction{Date: date, Kind: "trade", PlayerID: pb.ID, From: b, To: a})
}
