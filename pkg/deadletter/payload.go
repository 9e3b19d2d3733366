package deadletter

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Payload forms, the Form of a Decoded payload.
const (
	FormEnvelope = "envelope"      // a Kinesis record: boxscore.stream.v1.Envelope (stages decode, validate)
	FormRow      = "warehouse_row" // the curated boxscore.warehouse.v1.BattingGameRow as protojson (stage load)
	FormNone     = "none"          // no payload stored
	FormUnknown  = "undecodable"   // neither
)

// StageLoad is the stage of a dead letter whose payload is the curated row as protojson:
// a row the warehouse (or the loader before it) refused.
const StageLoad = "load"

// Decoded is what a dead letter's payload says.
type Decoded struct {
	Form     string
	Envelope *streamv1.Envelope          // FormEnvelope, also when its event is undecodable
	Row      *warehousev1.BattingGameRow // FormRow
	// Event is the event of the payload: the envelope's, or rebuilt from the row. Nil when
	// it cannot be decoded (Err says why).
	Event *statsv1.StatEvent
	Err   error
}

// DecodePayload decodes a dead letter's payload: the one rule for the loader, which stores
// the player and game of every dead letter it inserts, and for `boxscore dlq`, which shows,
// replays and indexes them. A load dead letter holds a protojson row; the others a Kinesis
// record. Each form is tried in the order the stage makes likely.
func DecodePayload(stage string, payload []byte) Decoded {
	if len(payload) == 0 {
		return Decoded{Form: FormNone, Err: errors.New("no payload stored")}
	}
	asRow := func() (Decoded, bool) {
		row := &warehousev1.BattingGameRow{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, row); err != nil || row.GetPlayer() == nil {
			return Decoded{}, false
		}
		return Decoded{Form: FormRow, Row: row, Event: EventFromRow(row)}, true
	}
	if stage == StageLoad {
		if d, ok := asRow(); ok {
			return d
		}
	}
	env, ev, err := statevent.DecodeEnvelope(payload)
	if err == nil {
		return Decoded{Form: FormEnvelope, Envelope: env, Event: ev}
	}
	if d, ok := asRow(); ok {
		return d
	}
	if env != nil {
		return Decoded{Form: FormEnvelope, Envelope: env, Err: fmt.Errorf("the envelope decodes but its event does not: %w", err)}
	}
	return Decoded{Form: FormUnknown, Err: fmt.Errorf("neither a stream envelope nor a warehouse row: %w", err)}
}

// Producer is the authenticated producer the payload names: the envelope's, or the row's;
// empty when it names none (records written before producers were recorded, or an
// undecodable payload).
func (d Decoded) Producer() string {
	if d.Envelope != nil {
		return d.Envelope.GetProducer()
	}
	return d.Row.GetProducer()
}

// Subject is the player and game a dead letter is about, as dead_letter stores them in
// player_id and game_id (NULL when unknown: HasPlayer false, GameID empty).
type Subject struct {
	PlayerID  int64
	HasPlayer bool
	// GameID is storable text (StorableText): a protobuf string may hold NUL.
	GameID string
}

// Subject returns the player and game of the decoded event; zero when there is no event or
// it names neither.
func (d Decoded) Subject() Subject {
	p := d.Event.GetPlayer()
	return Subject{PlayerID: p.GetMlbId(), HasPlayer: p != nil, GameID: StorableText(d.Event.GetGame().GetGameId())}
}

// EventFromRow rebuilds the event a curated row came from: the fields the row keeps of it
// (the derived ones, singles, extra-base hits, times on base, are not part of an event). A
// retraction row gives a retraction: its player, game, version and reason, no batting line.
func EventFromRow(r *warehousev1.BattingGameRow) *statsv1.StatEvent {
	i := func(v int32) *int32 { return &v }
	homeAway := statsv1.HomeAway_HOME_AWAY_AWAY
	if r.GetHome() {
		homeAway = statsv1.HomeAway_HOME_AWAY_HOME
	}
	if r.GetRetraction() != nil {
		game := &statsv1.Game{GameId: r.GetGameId(), Date: r.GetGameDate(), GameNumber: r.GetGameNumber(),
			Opponent: r.GetOpponent(), Season: r.GetSeason()}
		if r.GetOpponent() != "" {
			game.HomeAway = homeAway
		}
		return &statsv1.StatEvent{
			EventId: r.GetEventId(), Version: r.GetVersion(), Player: r.GetPlayer(), Game: game,
			SourceTime: r.GetSourceTime(), Retraction: &statsv1.Retraction{Reason: r.GetRetraction().GetReason()},
		}
	}
	return &statsv1.StatEvent{
		EventId: r.GetEventId(),
		Version: r.GetVersion(),
		Player:  r.GetPlayer(),
		Game: &statsv1.Game{
			GameId: r.GetGameId(), Date: r.GetGameDate(), GameNumber: r.GetGameNumber(),
			Opponent: r.GetOpponent(), HomeAway: homeAway, Season: r.GetSeason(),
		},
		Batting: &statsv1.BattingLine{
			PlateAppearances: i(r.GetPlateAppearances()), AtBats: i(r.GetAtBats()), Runs: i(r.GetRuns()),
			Hits: i(r.GetHits()), Doubles: i(r.GetDoubles()), Triples: i(r.GetTriples()), HomeRuns: i(r.GetHomeRuns()),
			Rbi: i(r.GetRbi()), BaseOnBalls: i(r.GetBaseOnBalls()), IntentionalWalks: i(r.GetIntentionalWalks()),
			StrikeOuts: i(r.GetStrikeOuts()), HitByPitch: i(r.GetHitByPitch()), SacBunts: i(r.GetSacBunts()),
			SacFlies: i(r.GetSacFlies()), StolenBases: i(r.GetStolenBases()), CaughtStealing: i(r.GetCaughtStealing()),
			GroundIntoDoublePlay: i(r.GetGroundIntoDoublePlay()), TotalBases: i(r.GetTotalBases()),
		},
		SourceTime: r.GetSourceTime(),
	}
}
