package statevent

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
)

// DecodedRecord is a Kinesis record body decoded by Decode: the envelope's fields the
// pipeline reads, and the event it carries.
//
// It exists because DecodeEnvelope costs about 45 allocations a record (the envelope, the
// event and each of its messages, one pointer per optional count, every string, the trace
// context map) and half of the transformer's CPU. Decode reads the common record (the
// fields the gateway writes, each well-formed) with protowire into messages held inside
// the DecodedRecord itself, with every string a substring of one copy of the record:
// two allocations instead. Anything else (an unknown field, a wrong wire type, invalid
// UTF-8, a truncated value, another content type) is handed to DecodeEnvelope, so the
// result, errors included, is DecodeEnvelope's for every input;
// FuzzDecodedRecordMatchesDecodeEnvelope holds the two to the same answers.
//
// A DecodedRecord must not be copied once decoded: its Event points into it. Rows built
// from it may share its messages (player, retraction, timestamps) and strings, as rows
// built from DecodeEnvelope's event do.
type DecodedRecord struct {
	// ContentType, EventID and Producer are the envelope's.
	ContentType, EventID, Producer string
	// AcceptedAt is the envelope's accepted_at, nil when it has none.
	AcceptedAt *timestamppb.Timestamp
	// Event is the event the envelope carries; nil when Decode failed.
	Event *statsv1.StatEvent

	// traceparent is the trace context's "traceparent" entry.
	traceparent string
	// traceContext is the envelope's whole trace context when DecodeEnvelope decoded it;
	// otherwise TraceContext decodes it from data on demand.
	traceContext map[string]string
	data         []byte
	// fast says the record was read without DecodeEnvelope (for tests).
	fast bool

	parts      EventParts
	acceptedAt timestamppb.Timestamp
}

// EventParts is a StatEvent and each of its messages in one block, as DecodeEvent fills
// it: events decoded into a slice of EventParts cost one allocation, where proto.Unmarshal
// allocates every message and optional count of each (about 30 an event). An EventParts
// must not be copied once decoded: its Event points into it.
type EventParts struct {
	event      statsv1.StatEvent
	player     statsv1.Player
	game       statsv1.Game
	batting    statsv1.BattingLine
	retraction statsv1.Retraction
	sourceTime timestamppb.Timestamp
	counts     [battingCountFields]int32
}

// Event is the event DecodeEvent read.
func (p *EventParts) Event() *statsv1.StatEvent { return &p.event }

// DecodeEvent reads the serialized StatEvent b into p, as proto.Unmarshal would, when b is
// in the common form: the fields of this version of the protocol, each well-formed. It
// reports false for anything else (an unknown field, a wrong wire type, invalid UTF-8, a
// truncated value), p then holding partial values: such an event is proto.Unmarshal's to
// read or refuse. text is a string copy of the buffer b is a slice of, and at is b's
// offset in it: every string of the event is a substring of text, one copy for all.
// The gateway reads PutStats requests with it, Decode each record's event.
func DecodeEvent(text string, b []byte, at int, p *EventParts) bool {
	return decodeEvent(&recordReader{text: text}, b, at, p)
}

// battingCountFields is the number of optional counts of a BattingLine, numbered 1 to 18.
const battingCountFields = 18

// Decode reads data into r, as DecodeEnvelope does: it returns DecodeEnvelope's error for
// the same data (a *DecodeError), and when the envelope could be read but not its event,
// r holds the envelope's fields and a nil Event. r is reset first, so it can be reused
// (never while rows built from its previous record are still in use).
func (r *DecodedRecord) Decode(data []byte) error {
	*r = DecodedRecord{}
	if r.decodeFast(data) {
		r.fast = true
		r.data = data
		return nil
	}
	*r = DecodedRecord{}
	env, ev, err := DecodeEnvelope(data)
	if env != nil {
		r.ContentType = env.GetContentType()
		r.EventID = env.GetEventId()
		r.Producer = env.GetProducer()
		r.AcceptedAt = env.GetAcceptedAt()
		r.traceContext = env.GetTraceContext()
		r.traceparent = r.traceContext["traceparent"]
	}
	r.Event = ev
	return err
}

// Traceparent returns the "traceparent" entry of the envelope's trace context, "" when
// there is none.
func (r *DecodedRecord) Traceparent() string { return r.traceparent }

// TraceContext returns the envelope's whole trace context (W3C traceparent, tracestate,
// baggage). It is decoded on demand when the record was read by the fast path: only a
// traceparent in an unusual form needs more than Traceparent.
func (r *DecodedRecord) TraceContext() map[string]string {
	if r.traceContext == nil && r.fast {
		env := &streamv1.Envelope{}
		// The fast path read these bytes, so they are an envelope: no error can occur.
		if proto.Unmarshal(r.data, env) == nil {
			r.traceContext = env.GetTraceContext()
		}
	}
	return r.traceContext
}

// decodeFast reads data into r's own messages and reports whether it could. On false, r
// holds partial values and the caller must reset it.
func (r *DecodedRecord) decodeFast(data []byte) bool {
	// One copy of the record for all of its strings, as proto.Unmarshal copies each.
	d := recordReader{text: string(data)}
	var payload []byte
	payloadAt := 0
	b := data
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		at := len(data) - len(b)
		switch {
		case typ != protowire.BytesType:
			return false
		case num == 1, num == 3, num == 6:
			s, n, ok := d.str(b, at)
			if !ok {
				return false
			}
			switch num {
			case 1:
				r.ContentType = s
			case 3:
				r.EventID = s
			default:
				r.Producer = s
			}
			b = b[n:]
		case num == 2:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			// Bytes are not merged: the last payload is the one.
			payload, payloadAt = v, at+n-len(v)
			b = b[n:]
		case num == 4:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !decodeTimestamp(v, &r.acceptedAt) {
				return false
			}
			r.AcceptedAt = &r.acceptedAt
			b = b[n:]
		case num == 5:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !r.decodeTraceEntry(&d, v, at+n-len(v)) {
				return false
			}
			b = b[n:]
		default:
			return false
		}
	}
	if !isStatEventContentType(r.ContentType) {
		return false
	}
	r.Event = &r.parts.event
	return decodeEvent(&d, payload, payloadAt, &r.parts)
}

// decodeTraceEntry reads one trace_context map entry at offset at of the record. Only
// the "traceparent" entry is kept; a later entry of the same key replaces an earlier one,
// as in the map.
func (r *DecodedRecord) decodeTraceEntry(d *recordReader, b []byte, at int) bool {
	var key, value string
	start := len(b)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
			return false
		}
		b = b[n:]
		s, n, ok := d.str(b, at+start-len(b))
		if !ok {
			return false
		}
		if num == 1 {
			key = s
		} else {
			value = s
		}
		b = b[n:]
	}
	if key == "traceparent" {
		r.traceparent = value
	}
	return true
}

// decodeEvent reads the StatEvent in b, at offset at of d's text, into p (see DecodeEvent).
func decodeEvent(d *recordReader, b []byte, at int, p *EventParts) bool {
	ev := &p.event
	start := len(b)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		here := at + start - len(b)
		switch num {
		case 1, 7:
			if typ != protowire.BytesType {
				return false
			}
			s, n, ok := d.str(b, here)
			if !ok {
				return false
			}
			if num == 1 {
				ev.EventId = s
			} else {
				ev.Source = s
			}
			b = b[n:]
		case 5:
			if typ != protowire.VarintType {
				return false
			}
			v, n := consumeVarint(b)
			if n < 0 {
				return false
			}
			ev.Version = int64(v)
			b = b[n:]
		case 2, 3, 4, 6, 8:
			if typ != protowire.BytesType {
				return false
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			msgAt := here + n - len(v)
			// A message field given twice is merged into the first, as proto.Unmarshal does.
			var ok bool
			switch num {
			case 2:
				ev.Player, ok = &p.player, decodePlayer(d, v, msgAt, &p.player)
			case 3:
				ev.Game, ok = &p.game, decodeGame(d, v, msgAt, &p.game)
			case 4:
				ev.Batting, ok = &p.batting, decodeBatting(v, &p.batting, &p.counts)
			case 6:
				ev.SourceTime, ok = &p.sourceTime, decodeTimestamp(v, &p.sourceTime)
			default:
				ev.Retraction, ok = &p.retraction, decodeRetraction(d, v, msgAt, &p.retraction)
			}
			if !ok {
				return false
			}
			b = b[n:]
		default:
			return false
		}
	}
	return true
}

func decodePlayer(d *recordReader, b []byte, at int, p *statsv1.Player) bool {
	start := len(b)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := consumeVarint(b)
			if n < 0 {
				return false
			}
			p.MlbId = int64(v)
			b = b[n:]
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			s, n, ok := d.str(b, at+start-len(b))
			if !ok {
				return false
			}
			if num == 2 {
				p.Name = s
			} else {
				p.Team = s
			}
			b = b[n:]
		default:
			return false
		}
	}
	return true
}

func decodeGame(d *recordReader, b []byte, at int, g *statsv1.Game) bool {
	start := len(b)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 2 || num == 4) && typ == protowire.BytesType:
			s, n, ok := d.str(b, at+start-len(b))
			if !ok {
				return false
			}
			switch num {
			case 1:
				g.GameId = s
			case 2:
				g.Date = s
			default:
				g.Opponent = s
			}
			b = b[n:]
		case (num == 3 || num == 5 || num == 6) && typ == protowire.VarintType:
			v, n := consumeVarint(b)
			if n < 0 {
				return false
			}
			switch num {
			case 3:
				g.GameNumber = int32(v)
			case 5:
				// An open enum: any number is kept, as proto.Unmarshal keeps it.
				g.HomeAway = statsv1.HomeAway(int32(v))
			default:
				g.Season = int32(v)
			}
			b = b[n:]
		default:
			return false
		}
	}
	return true
}

func decodeBatting(b []byte, line *statsv1.BattingLine, counts *[battingCountFields]int32) bool {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 || typ != protowire.VarintType || num < 1 || num > battingCountFields {
			return false
		}
		b = b[n:]
		v, n := consumeVarint(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		c := &counts[num-1]
		*c = int32(v)
		switch num {
		case 1:
			line.PlateAppearances = c
		case 2:
			line.AtBats = c
		case 3:
			line.Runs = c
		case 4:
			line.Hits = c
		case 5:
			line.Doubles = c
		case 6:
			line.Triples = c
		case 7:
			line.HomeRuns = c
		case 8:
			line.Rbi = c
		case 9:
			line.BaseOnBalls = c
		case 10:
			line.IntentionalWalks = c
		case 11:
			line.StrikeOuts = c
		case 12:
			line.HitByPitch = c
		case 13:
			line.SacBunts = c
		case 14:
			line.SacFlies = c
		case 15:
			line.StolenBases = c
		case 16:
			line.CaughtStealing = c
		case 17:
			line.GroundIntoDoublePlay = c
		default:
			line.TotalBases = c
		}
	}
	return true
}

func decodeRetraction(d *recordReader, b []byte, at int, r *statsv1.Retraction) bool {
	start := len(b)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		s, n, ok := d.str(b, at+start-len(b))
		if !ok {
			return false
		}
		r.Reason = s
		b = b[n:]
	}
	return true
}

func decodeTimestamp(b []byte, ts *timestamppb.Timestamp) bool {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 || (num != 1 && num != 2) || typ != protowire.VarintType {
			return false
		}
		b = b[n:]
		v, n := consumeVarint(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == 1 {
			ts.Seconds = int64(v)
		} else {
			ts.Nanos = int32(v)
		}
	}
	return true
}

// consumeTag is protowire.ConsumeTag with the one-byte tags of every field here read
// inline. A field number 0 it returns is refused by every caller, as by ConsumeTag.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeVarint is protowire.ConsumeVarint with one-byte values (most counts) read inline.
func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// recordReader hands out a record's (or a request's) strings as substrings of one copy of it.
type recordReader struct {
	text string
}

// str reads the length-delimited string at the start of b, which is at offset at of the
// record: the string, the bytes consumed, and false when it is truncated or not valid
// UTF-8 (proto3 strings must be).
func (d *recordReader) str(b []byte, at int) (string, int, bool) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 || !utf8.Valid(v) {
		return "", 0, false
	}
	from := at + n - len(v)
	return d.text[from : from+len(v)], n, true
}
