package httpapi

import (
	"strconv"
	"strings"
	"unicode/utf8"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
)

// decodeEvent decodes one event of a request body as ingestapi.DecodeEvent does. Reading
// protojson was 44% of the gateway's CPU per event (issue 13): it tokenizes through
// reflection and allocates per field. Most events producers send are in a plain form —
// the protojson field names, strings without escapes, integers as digits — which
// fastDecodeEvent reads directly. Anything else (escapes, other spellings, nulls,
// duplicates, timestamps, any error) goes to protojson, so the events accepted and the
// error messages are exactly protojson's (FuzzFastDecodeEventMatchesProtojson).
func decodeEvent(data []byte) (*statsv1.StatEvent, error) {
	if ev, ok := fastDecodeEvent(data); ok {
		return ev, nil
	}
	return ingestapi.DecodeEvent(data)
}

// eventParts are the messages of one event, allocated together: one allocation instead of
// one per nested message and per optional count.
type eventParts struct {
	event      statsv1.StatEvent
	player     statsv1.Player
	game       statsv1.Game
	batting    statsv1.BattingLine
	retraction statsv1.Retraction
	counts     [18]int32 // the optional counts of batting, by field number - 1
}

// fastDecodeEvent reads data when it is an event in the plain form; ok is false when it is
// not (then data may still be a valid event in another form, or no event at all).
func fastDecodeEvent(data []byte) (ev *statsv1.StatEvent, ok bool) {
	// One string for the whole event: every string field is a part of it.
	return fastDecodeEventString(string(data))
}

// fastDecodeEventString is fastDecodeEvent of s; the event's strings are parts of s.
func fastDecodeEventString(s string) (ev *statsv1.StatEvent, ok bool) {
	d := fastDecoder{s: s}
	parts := &eventParts{}
	if !d.eventObject(parts) {
		return nil, false
	}
	d.skipSpace()
	if d.pos != len(d.s) {
		return nil, false
	}
	return &parts.event, true
}

// fastDecodeArray reads data when it is a JSON array of at most maxEvents events in the plain
// form; ok is false when it is not, with nothing decided.
func fastDecodeArray(data []byte, maxEvents int) (events []*statsv1.StatEvent, ok bool) {
	// One string for the whole body: every string field of every event is a part of it.
	d := fastDecoder{s: string(data)}
	if !d.consume('[') {
		return nil, false
	}
	if !d.consume(']') {
		for {
			if len(events) == maxEvents {
				return nil, false
			}
			parts := &eventParts{}
			if !d.eventObject(parts) {
				return nil, false
			}
			events = append(events, &parts.event)
			if d.consume(']') {
				break
			}
			if !d.consume(',') {
				return nil, false
			}
		}
	}
	d.skipSpace()
	if d.pos != len(d.s) {
		return nil, false
	}
	return events, true
}

// fastDecodeNDJSON reads data when it is at most maxEvents events in the plain form, one per
// line, with blank lines between them as decodeNDJSONStream allows; ok is false when it is
// not, with nothing decided.
func fastDecodeNDJSON(data []byte, maxEvents int) (events []*statsv1.StatEvent, ok bool) {
	// One string for the whole body: every string field of every event is a part of it.
	rest := string(data)
	for len(rest) > 0 {
		line := rest
		if end := strings.IndexByte(rest, '\n'); end >= 0 {
			line, rest = rest[:end], rest[end+1:]
		} else {
			rest = ""
		}
		// As decodeNDJSONStream trims (bytes.TrimSpace: the same spaces).
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(events) == maxEvents {
			return nil, false
		}
		ev, ok := fastDecodeEventString(line)
		if !ok {
			return nil, false
		}
		events = append(events, ev)
	}
	return events, true
}

// fastDecoder reads a strict subset of the JSON protojson accepts for a StatEvent. Every
// method returns false, without deciding anything, at the first byte outside the subset.
type fastDecoder struct {
	s   string
	pos int
}

func (d *fastDecoder) skipSpace() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, if it is next.
func (d *fastDecoder) consume(c byte) bool {
	d.skipSpace()
	if d.pos < len(d.s) && d.s[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// peek skips whitespace and reports whether c is next, without consuming it.
func (d *fastDecoder) peek(c byte) bool {
	d.skipSpace()
	return d.pos < len(d.s) && d.s[d.pos] == c
}

// str reads a string without escapes or control characters, in valid UTF-8.
func (d *fastDecoder) str() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	start := d.pos
	ascii := true
	for d.pos < len(d.s) {
		c := d.s[d.pos]
		switch {
		case c == '"':
			v := d.s[start:d.pos]
			d.pos++
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.pos++
	}
	return "", false
}

// integer reads an integer of bits bits, as a JSON number or a string holding one, in
// canonical decimal form: no sign but '-', no leading zeros, no "-0", no fraction or
// exponent.
func (d *fastDecoder) integer(bits int) (int64, bool) {
	d.skipSpace()
	quoted := d.pos < len(d.s) && d.s[d.pos] == '"'
	if quoted {
		d.pos++
	}
	start := d.pos
	if d.pos < len(d.s) && d.s[d.pos] == '-' {
		d.pos++
	}
	digits := d.pos
	for d.pos < len(d.s) && d.s[d.pos] >= '0' && d.s[d.pos] <= '9' {
		d.pos++
	}
	switch n := d.pos - digits; {
	case n == 0:
		return 0, false
	case d.s[digits] == '0' && (n > 1 || digits > start): // "01", "-0"
		return 0, false
	}
	text := d.s[start:d.pos]
	if quoted {
		if d.pos >= len(d.s) || d.s[d.pos] != '"' {
			return 0, false
		}
		d.pos++
	} else if d.pos < len(d.s) {
		// A number ends at a delimiter; "1.5", "1e3" and "1x" are not for this reader.
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r', ',', '}':
		default:
			return 0, false
		}
	}
	v, err := strconv.ParseInt(text, 10, bits)
	return v, err == nil
}

// object reads an object, calling member for every key after its ':'; member reads the
// value. A key seen twice is refused (protojson refuses it).
func (d *fastDecoder) object(member func(key string) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		key, ok := d.str()
		if !ok || !d.consume(':') || !member(key) {
			return false
		}
		if d.consume('}') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

// seen marks bit in *set and reports whether it was clear: a field's first occurrence.
func seen(set *uint32, bit uint) bool {
	if *set&(1<<bit) != 0 {
		return false
	}
	*set |= 1 << bit
	return true
}

func (d *fastDecoder) eventObject(p *eventParts) bool {
	ev := &p.event
	var fields uint32
	return d.object(func(key string) bool {
		var ok bool
		switch key {
		case "eventId":
			if !seen(&fields, 1) {
				return false
			}
			ev.EventId, ok = d.str()
		case "player":
			if !seen(&fields, 2) || !d.peek('{') {
				return false
			}
			ev.Player = &p.player
			ok = d.playerObject(&p.player)
		case "game":
			if !seen(&fields, 3) || !d.peek('{') {
				return false
			}
			ev.Game = &p.game
			ok = d.gameObject(&p.game)
		case "batting":
			if !seen(&fields, 4) || !d.peek('{') {
				return false
			}
			ev.Batting = &p.batting
			ok = d.battingObject(&p.batting, &p.counts)
		case "version":
			if !seen(&fields, 5) {
				return false
			}
			ev.Version, ok = d.integer(64)
		case "source":
			if !seen(&fields, 7) {
				return false
			}
			ev.Source, ok = d.str()
		case "retraction":
			if !seen(&fields, 8) || !d.peek('{') {
				return false
			}
			ev.Retraction = &p.retraction
			ok = d.retractionObject(&p.retraction)
		}
		// Any other key (sourceTime, a proto field name, an unknown field): protojson's.
		return ok
	})
}

func (d *fastDecoder) playerObject(p *statsv1.Player) bool {
	var fields uint32
	return d.object(func(key string) bool {
		var ok bool
		switch key {
		case "mlbId":
			if !seen(&fields, 1) {
				return false
			}
			p.MlbId, ok = d.integer(64)
		case "name":
			if !seen(&fields, 2) {
				return false
			}
			p.Name, ok = d.str()
		case "team":
			if !seen(&fields, 3) {
				return false
			}
			p.Team, ok = d.str()
		}
		return ok
	})
}

func (d *fastDecoder) gameObject(g *statsv1.Game) bool {
	var fields uint32
	return d.object(func(key string) bool {
		var ok bool
		var n int64
		switch key {
		case "gameId":
			if !seen(&fields, 1) {
				return false
			}
			g.GameId, ok = d.str()
		case "date":
			if !seen(&fields, 2) {
				return false
			}
			g.Date, ok = d.str()
		case "gameNumber":
			if !seen(&fields, 3) {
				return false
			}
			n, ok = d.integer(32)
			g.GameNumber = int32(n)
		case "opponent":
			if !seen(&fields, 4) {
				return false
			}
			g.Opponent, ok = d.str()
		case "homeAway":
			if !seen(&fields, 5) {
				return false
			}
			var name string
			if name, ok = d.str(); ok {
				var v int32
				// Only the names: a number, or a name protojson would refuse, is protojson's.
				v, ok = statsv1.HomeAway_value[name]
				g.HomeAway = statsv1.HomeAway(v)
			}
		case "season":
			if !seen(&fields, 6) {
				return false
			}
			n, ok = d.integer(32)
			g.Season = int32(n)
		}
		return ok
	})
}

// battingFields are the field numbers of BattingLine's counts by JSON name.
var battingFields = map[string]int{
	"plateAppearances": 1, "atBats": 2, "runs": 3, "hits": 4, "doubles": 5, "triples": 6,
	"homeRuns": 7, "rbi": 8, "baseOnBalls": 9, "intentionalWalks": 10, "strikeOuts": 11,
	"hitByPitch": 12, "sacBunts": 13, "sacFlies": 14, "stolenBases": 15, "caughtStealing": 16,
	"groundIntoDoublePlay": 17, "totalBases": 18,
}

func (d *fastDecoder) battingObject(b *statsv1.BattingLine, counts *[18]int32) bool {
	var fields uint32
	return d.object(func(key string) bool {
		number, known := battingFields[key]
		if !known || !seen(&fields, uint(number)) {
			return false
		}
		n, ok := d.integer(32)
		if !ok {
			return false
		}
		count := &counts[number-1]
		*count = int32(n)
		switch number {
		case 1:
			b.PlateAppearances = count
		case 2:
			b.AtBats = count
		case 3:
			b.Runs = count
		case 4:
			b.Hits = count
		case 5:
			b.Doubles = count
		case 6:
			b.Triples = count
		case 7:
			b.HomeRuns = count
		case 8:
			b.Rbi = count
		case 9:
			b.BaseOnBalls = count
		case 10:
			b.IntentionalWalks = count
		case 11:
			b.StrikeOuts = count
		case 12:
			b.HitByPitch = count
		case 13:
			b.SacBunts = count
		case 14:
			b.SacFlies = count
		case 15:
			b.StolenBases = count
		case 16:
			b.CaughtStealing = count
		case 17:
			b.GroundIntoDoublePlay = count
		case 18:
			b.TotalBases = count
		}
		return true
	})
}

func (d *fastDecoder) retractionObject(r *statsv1.Retraction) bool {
	var fields uint32
	return d.object(func(key string) bool {
		if key != "reason" || !seen(&fields, 1) {
			return false
		}
		var ok bool
		r.Reason, ok = d.str()
		return ok
	})
}
