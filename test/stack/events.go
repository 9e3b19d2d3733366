package stack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
)

// Line is one batting line: as a test sends it, and as the warehouse must hold it.
type Line struct {
	EventID  string // empty: the gateway assigns one
	PlayerID int64
	Name     string
	GameID   string
	Date     string // YYYY-MM-DD
	Opponent string
	// GameNumber is 0 for a single game, 1 or 2 in a doubleheader.
	GameNumber                                              int
	Home                                                    bool
	Version                                                 int64
	PA, AB, R, H, D2, D3, HR, RBI, BB, IBB, SO, HBP, SH, SF int
	SB, CS, GIDP                                            int
	// Impossible lines break a consistency rule (hits > at bats): the gateway refuses them
	// (422) and, written straight to the stream past it, the transformer dead-letters them.
	// The warehouse never holds one.
	Impossible bool
}

// Key is the warehouse's key of the line: player and game.
func (l Line) Key() string { return fmt.Sprintf("%d/%s", l.PlayerID, l.GameID) }

// Singles are the hits that are not extra-base hits.
func (l Line) Singles() int { return l.H - l.D2 - l.D3 - l.HR }

// TotalBases is 1B + 2·2B + 3·3B + 4·HR.
func (l Line) TotalBases() int { return l.Singles() + 2*l.D2 + 3*l.D3 + 4*l.HR }

// PartitionKey is the key the gateway writes the line's event under: the player.
func (l Line) PartitionKey() string { return strconv.FormatInt(l.PlayerID, 10) }

// Event renders the line as the ingest API's JSON (protojson names). An empty EventID is
// left out, so the gateway assigns one.
func (l Line) Event() map[string]any {
	homeAway := "HOME_AWAY_AWAY"
	if l.Home {
		homeAway = "HOME_AWAY_HOME"
	}
	ev := map[string]any{
		"player":  map[string]any{"mlbId": l.PartitionKey(), "name": l.Name, "team": "LAD"},
		"game":    map[string]any{"gameId": l.GameID, "date": l.Date, "gameNumber": l.GameNumber, "opponent": l.Opponent, "homeAway": homeAway},
		"version": strconv.FormatInt(l.Version, 10),
		"source":  "stack-test",
		"batting": map[string]any{
			"plateAppearances": l.PA, "atBats": l.AB, "runs": l.R, "hits": l.H, "doubles": l.D2,
			"triples": l.D3, "homeRuns": l.HR, "rbi": l.RBI, "baseOnBalls": l.BB, "intentionalWalks": l.IBB,
			"strikeOuts": l.SO, "hitByPitch": l.HBP, "sacBunts": l.SH, "sacFlies": l.SF, "stolenBases": l.SB,
			"caughtStealing": l.CS, "groundIntoDoublePlay": l.GIDP, "totalBases": l.TotalBases(),
		},
	}
	if l.EventID != "" {
		ev["eventId"] = l.EventID
	}
	return ev
}

// PlayerName is the name lines of player id get unless a test names the player.
func PlayerName(id int64) string { return fmt.Sprintf("Player %d", id) }

// RandomLine makes a consistent batting line (the rules of pkg/statevent hold) of player
// in game gameID on date, with event id "<prefix>-<player>-<game>-v<version>".
func RandomLine(rng *rand.Rand, prefix string, player int64, gameID, date string, version int64) Line {
	pa := 3 + rng.IntN(3)
	bb := rng.IntN(2)
	hbp := rng.IntN(4) / 3
	sf := rng.IntN(5) / 4
	ab := pa - bb - hbp - sf
	h := rng.IntN(ab + 1)
	hr := rng.IntN(h+1) / 2
	d2 := rng.IntN(h-hr+1) / 2
	return Line{
		EventID: fmt.Sprintf("%s-%d-%s-v%d", prefix, player, gameID, version), PlayerID: player, Name: PlayerName(player),
		GameID: gameID, Date: date, Opponent: "SD", Home: true, Version: version,
		PA: pa, AB: ab, R: min(pa, hr+rng.IntN(2)), H: h, D2: d2, HR: hr, RBI: hr + rng.IntN(2),
		BB: bb, SO: rng.IntN(ab - h + 1), HBP: hbp, SF: sf, SB: rng.IntN(2),
	}
}

// ImpossibleLine makes a line with more hits than at bats, which the transformer
// dead-letters with reason hits_exceed_at_bats.
func ImpossibleLine(eventID string, player int64, gameID, date string) Line {
	return Line{EventID: eventID, PlayerID: player, Name: PlayerName(player), GameID: gameID, Date: date,
		Opponent: "COL", Home: true, Version: 1, PA: 4, AB: 3, H: 4, BB: 1, Impossible: true}
}

// PlayersOverShards returns perShard player ids for every open shard of the stream: the
// first ids from "from" on whose partition keys Kinesis places in each shard, dealt round
// by round (one of every shard, then a second of every shard, ...), so that any prefix of
// the list covers as many shards as it can. Tests that claim to cover several shards take
// their players from here: consecutive ids may well share a shard.
func PlayersOverShards(t testing.TB, client *kinesis.Client, streamName string, from int64, perShard int) []int64 {
	t.Helper()
	shards, err := streamtest.Shards(context.Background(), client, streamName)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, s := range shards {
		if sh := (streamtest.Shard{Shard: s}); sh.Open() {
			open = append(open, sh.ID())
		}
	}
	sort.Strings(open)
	byShard := map[string][]int64{}
	found := 0
	for id := from; found < len(open)*perShard; id++ {
		if id > from+int64(1000*len(open)*perShard) {
			t.Fatalf("no %d players per shard over %d shards among ids %d..%d", perShard, len(open), from, id)
		}
		shard, err := streamtest.ShardOf(shards, strconv.FormatInt(id, 10))
		if err != nil {
			t.Fatal(err)
		}
		if len(byShard[shard]) < perShard {
			byShard[shard] = append(byShard[shard], id)
			found++
		}
	}
	ids := make([]int64, 0, found)
	for round := range perShard {
		for _, shard := range open {
			ids = append(ids, byShard[shard][round])
		}
	}
	return ids
}
