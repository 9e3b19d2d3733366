package transform

// The transform as it was before it decoded records with statevent.DecodedRecord
// (statevent.DecodeEnvelope, then a row allocated field by field), kept verbatim so that
// FuzzTransformMatchesReference can prove the fast path changes no row and no rejection.

import (
	"errors"
	"fmt"
	"unicode"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

func referenceTransform(records []*transformv1.SourceRecord) *transformv1.TransformResponse {
	resp := &transformv1.TransformResponse{}
	for _, rec := range records {
		row, rej := referenceTransformRecord(rec)
		if rej != nil {
			resp.Rejections = append(resp.Rejections, rej)
			continue
		}
		resp.Rows = append(resp.Rows, row)
	}
	return resp
}

func referenceTransformRecord(rec *transformv1.SourceRecord) (*warehousev1.BattingGameRow, *warehousev1.Rejection) {
	env, ev, err := statevent.DecodeEnvelope(rec.GetData())
	if err != nil {
		rej := &warehousev1.Rejection{
			Position: clonePosition(rec.GetPosition()),
			Stage:    StageDecode,
			Reason:   statevent.ReasonEnvelopeUndecodable,
			Detail:   err.Error(),
			Payload:  rec.GetData(),
		}
		if de, ok := errors.AsType[*statevent.DecodeError](err); ok {
			rej.Reason = de.Reason
			rej.EventId = de.EventID
		}
		return nil, rej
	}

	statevent.Normalize(ev)
	violations := referenceCheckText(env, ev)
	violations = append(violations, statevent.ValidateShape(ev)...)
	violations = append(violations, referenceCheckEventID(env, ev)...)
	violations = append(violations, referenceCheckAcceptedAt(env, ev)...)
	if len(violations) == 0 {
		violations = statevent.CheckConsistency(ev)
	}
	var row *warehousev1.BattingGameRow
	if len(violations) == 0 {
		row = referenceBuildRow(rec, env, ev)
		// A bug here, not the producer's: still a rejection, never a row that fails the
		// loader's batch.
		violations = statevent.CheckRow(row)
	}
	if len(violations) > 0 {
		// The envelope's id names the record as decode rejections do; the two ids only
		// differ when the record is rejected for exactly that.
		eventID := env.GetEventId()
		if eventID == "" {
			eventID = ev.GetEventId()
		}
		return nil, &warehousev1.Rejection{
			Position: clonePosition(rec.GetPosition()),
			Stage:    StageValidate,
			Reason:   violations[0].Reason,
			Field:    violations[0].Field,
			Detail:   describe(violations),
			EventId:  eventID,
			Payload:  rec.GetData(),
			// With the id, stage and reason it lets the loader dead-letter this event once
			// however many times it is in the stream.
			EventVersion: ev.GetVersion(),
			Producer:     env.GetProducer(),
		}
	}
	return row, nil
}

func referenceCheckAcceptedAt(env *streamv1.Envelope, ev *statsv1.StatEvent) []statevent.Violation {
	at := env.GetAcceptedAt()
	if at == nil {
		return []statevent.Violation{{Field: "envelope.acceptedAt", Reason: "required",
			Detail: "accepted_at is required on a stream record (the gateway sets it): the version ceiling is checked against it"}}
	}
	if err := at.CheckValid(); err != nil {
		return []statevent.Violation{{Field: "envelope.acceptedAt", Reason: "invalid_timestamp",
			Detail: fmt.Sprintf("accepted_at is not a valid timestamp: %v", err)}}
	}
	return statevent.CheckVersionCeiling(ev, at.AsTime())
}

func referenceCheckEventID(env *streamv1.Envelope, ev *statsv1.StatEvent) []statevent.Violation {
	switch {
	case ev.GetEventId() == "" && env.GetEventId() == "":
		return []statevent.Violation{{Field: "eventId", Reason: "required",
			Detail: "event id is required on a stream record (the gateway assigns one)"}}
	case ev.GetEventId() != "" && env.GetEventId() != "" && ev.GetEventId() != env.GetEventId():
		return []statevent.Violation{{Field: "eventId", Reason: ReasonEventIDMismatch,
			Detail: "event id " + ev.GetEventId() + " differs from the envelope's " + env.GetEventId()}}
	}
	return nil
}

func referenceCheckText(env *streamv1.Envelope, ev *statsv1.StatEvent) []statevent.Violation {
	var vs []statevent.Violation
	if id := env.GetEventId(); len(id) > statevent.MaxEventIDLength {
		vs = append(vs, statevent.Violation{Field: "envelope.eventId", Reason: ReasonInvalidText,
			Detail: fmt.Sprintf("envelope event id has %d bytes, at most %d are allowed", len(id), statevent.MaxEventIDLength)})
	}
	if p := env.GetProducer(); len(p) > MaxProducerLength {
		vs = append(vs, statevent.Violation{Field: "envelope.producer", Reason: ReasonInvalidText,
			Detail: fmt.Sprintf("envelope producer has %d bytes, at most %d are allowed", len(p), MaxProducerLength)})
	}
	fields := []struct{ field, value string }{
		{"envelope.eventId", env.GetEventId()},
		{"envelope.producer", env.GetProducer()},
		{"eventId", ev.GetEventId()},
		{"player.name", ev.GetPlayer().GetName()},
		{"player.team", ev.GetPlayer().GetTeam()},
		{"game.gameId", ev.GetGame().GetGameId()},
		{"game.date", ev.GetGame().GetDate()},
		{"game.opponent", ev.GetGame().GetOpponent()},
		{"source", ev.GetSource()},
		{"retraction.reason", ev.GetRetraction().GetReason()},
	}
	for _, f := range fields {
		for i, r := range f.value {
			if unicode.IsControl(r) {
				vs = append(vs, statevent.Violation{Field: f.field, Reason: ReasonInvalidText,
					Detail: fmt.Sprintf("%s holds the control character %U at byte %d", f.field, r, i)})
				break
			}
		}
	}
	return vs
}

func referenceBuildRow(rec *transformv1.SourceRecord, env *streamv1.Envelope, ev *statsv1.StatEvent) *warehousev1.BattingGameRow {
	g := ev.GetGame()
	eventID := ev.GetEventId()
	if eventID == "" {
		eventID = env.GetEventId()
	}
	row := &warehousev1.BattingGameRow{
		EventId:    eventID,
		Version:    ev.GetVersion(),
		Player:     ev.GetPlayer(),
		GameId:     g.GetGameId(),
		GameDate:   g.GetDate(),
		GameNumber: g.GetGameNumber(),
		Season:     g.GetSeason(),
		Opponent:   g.GetOpponent(),
		Home:       g.GetHomeAway() == statsv1.HomeAway_HOME_AWAY_HOME,
		SourceTime: ev.GetSourceTime(),
		AcceptedAt: env.GetAcceptedAt(),
		Position:   clonePosition(rec.GetPosition()),
		TraceId:    TraceID(env.GetTraceContext()),
		Producer:   env.GetProducer(),
	}
	if r := ev.GetRetraction(); r != nil {
		row.Retraction = r
		return row
	}
	b := ev.GetBatting()
	h, d, t, hr := b.GetHits(), b.GetDoubles(), b.GetTriples(), b.GetHomeRuns()
	row.TotalBases = statevent.TotalBases(h, d, t, hr)
	if b.TotalBases != nil {
		row.TotalBases = b.GetTotalBases()
	}
	row.PlateAppearances = b.GetPlateAppearances()
	row.AtBats = b.GetAtBats()
	row.Runs = b.GetRuns()
	row.Hits = h
	row.Singles = statevent.Singles(h, d, t, hr)
	row.Doubles = d
	row.Triples = t
	row.HomeRuns = hr
	row.Rbi = b.GetRbi()
	row.BaseOnBalls = b.GetBaseOnBalls()
	row.IntentionalWalks = b.GetIntentionalWalks()
	row.StrikeOuts = b.GetStrikeOuts()
	row.HitByPitch = b.GetHitByPitch()
	row.SacBunts = b.GetSacBunts()
	row.SacFlies = b.GetSacFlies()
	row.StolenBases = b.GetStolenBases()
	row.CaughtStealing = b.GetCaughtStealing()
	row.GroundIntoDoublePlay = b.GetGroundIntoDoublePlay()
	row.ExtraBaseHits = d + t + hr
	row.TimesOnBase = h + b.GetBaseOnBalls() + b.GetHitByPitch()
	return row
}
