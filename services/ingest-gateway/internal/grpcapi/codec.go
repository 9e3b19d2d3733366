package grpcapi

import (
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// Codec is gRPC's protobuf codec with a faster reader of PutStats requests: install it on
// the server with grpc.ForceServerCodecV2(grpcapi.Codec{}).
//
// proto.Unmarshal reads a PutStatsRequest through reflection and allocates every event's
// messages, strings and optional counts one by one (about 30 allocations an event, a third
// of the gateway's allocations on the gRPC path). Most requests are in the common form —
// the fields of this version of the protocol, each well-formed — which decodePutStats reads
// with protowire into the messages of one block per request, every string a substring of
// one copy of the request. Anything else (an unknown field, a wrong wire type, invalid
// UTF-8, a truncated value) goes to proto.Unmarshal with the same bytes, so the request,
// or the error, is always proto.Unmarshal's (FuzzDecodePutStatsMatchesProto). Every
// other message, and every answer, is the protobuf codec's.
type Codec struct{}

// Name is the protobuf codec's: the content type clients send is unchanged.
func (Codec) Name() string { return "proto" }

// Marshal is the protobuf codec's.
func (Codec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec().Marshal(v) }

// Unmarshal reads a PutStatsRequest with decodePutStats, anything else (or a request it
// cannot read) as the protobuf codec does.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*ingestv1.PutStatsRequest)
	if !ok {
		return protoCodec().Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	proto.Reset(req)
	if events, ok := decodePutStats(b); ok {
		req.Events = events
		return nil
	}
	proto.Reset(req)
	return proto.Unmarshal(b, req) // as the protobuf codec does, error included
}

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// eventParts are the messages of one event, allocated together (a retraction and a source
// time, which few events have, are allocated when present).
type eventParts struct {
	event   statsv1.StatEvent
	player  statsv1.Player
	game    statsv1.Game
	batting statsv1.BattingLine
	counts  [battingCountFields]int32
}

// battingCountFields is the number of optional counts of a BattingLine, numbered 1 to 18.
const battingCountFields = 18

// decodePutStats reads the events of a PutStatsRequest in the common form; ok is false when
// b is not one (it may still be a request proto.Unmarshal reads, or none at all).
func decodePutStats(b []byte) (events []*statsv1.StatEvent, ok bool) {
	// Count the events first, so that their messages are one allocation.
	count := 0
	for rest := b; len(rest) > 0; {
		num, typ, n := consumeTag(rest)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		rest = rest[n:]
		_, n = protowire.ConsumeBytes(rest)
		if n < 0 {
			return nil, false
		}
		rest = rest[n:]
		count++
	}
	if count == 0 {
		return nil, true
	}
	d := reader{text: string(b)}
	parts := make([]eventParts, count)
	events = make([]*statsv1.StatEvent, count)
	rest := b
	for i := range parts {
		_, _, n := consumeTag(rest)
		rest = rest[n:]
		v, n := protowire.ConsumeBytes(rest)
		if !d.event(v, len(b)-len(rest)+n-len(v), &parts[i]) {
			return nil, false
		}
		rest = rest[n:]
		events[i] = &parts[i].event
	}
	return events, true
}

// reader hands out a request's strings as substrings of one copy of it.
type reader struct{ text string }

// str reads the length-delimited string at the start of b, which is at offset at of the
// request: the string, the bytes consumed, and false when it is truncated or not valid
// UTF-8 (proto3 strings must be).
func (d *reader) str(b []byte, at int) (string, int, bool) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 || !utf8.Valid(v) {
		return "", 0, false
	}
	from := at + n - len(v)
	return d.text[from : from+len(v)], n, true
}

// event reads one StatEvent, b at offset at of the request, into p. A message field given
// twice is merged into the first, and a scalar given twice is the last, as proto.Unmarshal
// does.
func (d *reader) event(b []byte, at int, p *eventParts) bool {
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
			ev.Version = int64(v) //nolint:gosec // protobuf's int64 is the varint's bits
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
			var ok bool
			switch num {
			case 2:
				ev.Player, ok = &p.player, d.player(v, msgAt, &p.player)
			case 3:
				ev.Game, ok = &p.game, d.game(v, msgAt, &p.game)
			case 4:
				ev.Batting, ok = &p.batting, batting(v, &p.batting, &p.counts)
			case 6:
				if ev.SourceTime == nil {
					ev.SourceTime = &timestamppb.Timestamp{}
				}
				ok = timestamp(v, ev.SourceTime)
			default:
				if ev.Retraction == nil {
					ev.Retraction = &statsv1.Retraction{}
				}
				ok = d.retraction(v, msgAt, ev.Retraction)
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

func (d *reader) player(b []byte, at int, p *statsv1.Player) bool {
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
			p.MlbId = int64(v) //nolint:gosec // protobuf's int64 is the varint's bits
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

func (d *reader) game(b []byte, at int, g *statsv1.Game) bool {
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
				g.GameNumber = int32(v) //nolint:gosec // protobuf's int32 is the varint's low bits
			case 5:
				// An open enum: any number is kept, as proto.Unmarshal keeps it.
				g.HomeAway = statsv1.HomeAway(int32(v)) //nolint:gosec // as above
			default:
				g.Season = int32(v) //nolint:gosec // as above
			}
			b = b[n:]
		default:
			return false
		}
	}
	return true
}

func batting(b []byte, line *statsv1.BattingLine, counts *[battingCountFields]int32) bool {
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
		*c = int32(v) //nolint:gosec // protobuf's int32 is the varint's low bits
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

func (d *reader) retraction(b []byte, at int, r *statsv1.Retraction) bool {
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

func timestamp(b []byte, ts *timestamppb.Timestamp) bool {
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
			ts.Seconds = int64(v) //nolint:gosec // protobuf's int64 is the varint's bits
		} else {
			ts.Nanos = int32(v) //nolint:gosec // protobuf's int32 is the varint's low bits
		}
	}
	return true
}

// consumeTag is protowire.ConsumeTag with one-byte tags read inline. A field number 0 it
// returns is refused by every caller, as by ConsumeTag.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeVarint is protowire.ConsumeVarint with one-byte values read inline.
func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}
