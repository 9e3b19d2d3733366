package grpcapi

import (
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// codecEvent is a request's event as producers send them; i varies it.
func codecEvent(i int) *statsv1.StatEvent {
	n := func(v int) *int32 { return proto.Int32(int32(v)) }
	ev := &statsv1.StatEvent{
		EventId: "bench-" + string(rune('a'+i%26)) + "-v1",
		Player:  &statsv1.Player{MlbId: int64(700000 + i), Name: "Player é", Team: "LAD"},
		Game:    &statsv1.Game{GameId: "LAN2024", Date: "2024-04-01", GameNumber: int32(i % 3), Opponent: "SD", HomeAway: statsv1.HomeAway_HOME_AWAY_HOME},
		Version: int64(i) << 40,
		Source:  "stack-test",
		Batting: &statsv1.BattingLine{PlateAppearances: n(4), AtBats: n(3), Runs: n(0), Hits: n(2), Doubles: n(1),
			Triples: n(0), HomeRuns: n(1), Rbi: n(200), BaseOnBalls: n(1), IntentionalWalks: n(0), StrikeOuts: n(1),
			HitByPitch: n(0), SacBunts: n(0), SacFlies: n(0), StolenBases: n(1), CaughtStealing: n(0),
			GroundIntoDoublePlay: n(0), TotalBases: n(6)},
	}
	switch i % 4 {
	case 1:
		ev.SourceTime = timestamppb.New(time.Date(2024, 4, 1, 19, 5, 0, 123, time.UTC))
		ev.Game.Season = 2024
	case 2:
		ev.Retraction, ev.Batting = &statsv1.Retraction{Reason: "reported twice"}, nil
	case 3:
		ev.Batting = &statsv1.BattingLine{Hits: n(-1)} // a negative count: ten varint bytes
		ev.Game.HomeAway = statsv1.HomeAway(7)
	}
	return ev
}

func codecRequest(events int) []byte {
	req := &ingestv1.PutStatsRequest{}
	for i := range events {
		req.Events = append(req.Events, codecEvent(i))
	}
	b, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	return b
}

// checkDecode holds Codec.Unmarshal to proto.Unmarshal for data: the same request or the
// same error.
func checkDecode(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	want := &ingestv1.PutStatsRequest{}
	wantErr := proto.Unmarshal(data, want)
	events, ok := decodePutStats(data)
	if ok {
		if wantErr != nil {
			t.Fatalf("decodePutStats read %x, which proto.Unmarshal refuses: %v", data, wantErr)
		}
		if got := (&ingestv1.PutStatsRequest{Events: events}); !proto.Equal(got, want) {
			t.Fatalf("decodePutStats(%x):\n got %v\nwant %v", data, got, want)
		}
	}
	got := &ingestv1.PutStatsRequest{Events: []*statsv1.StatEvent{{EventId: "stale"}}}
	err := Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, got)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("Unmarshal(%x): error %v, proto.Unmarshal's %v", data, err, wantErr)
	case err != nil && err.Error() != wantErr.Error():
		t.Fatalf("Unmarshal(%x): error %q, proto.Unmarshal's %q", data, err, wantErr)
	case err == nil && !proto.Equal(got, want):
		t.Fatalf("Unmarshal(%x):\n got %v\nwant %v", data, got, want)
	}
	return ok
}

func TestDecodePutStatsCommonRequests(t *testing.T) {
	for _, n := range []int{0, 1, 4, 100, 500} {
		if data := codecRequest(n); !checkDecode(t, data) {
			t.Errorf("a request of %d events in the common form went to proto.Unmarshal", n)
		}
	}
	// Merged and repeated fields, as proto.Unmarshal merges them.
	twice := protowire.AppendTag(nil, 1, protowire.BytesType)
	ev := codecRequest(1)[2:] // the one event's bytes (a length < 128)
	var again []byte
	again = append(again, ev...)
	again = append(again, ev...) // every field twice, messages merged
	twice = protowire.AppendBytes(twice, again)
	if !checkDecode(t, twice) {
		t.Error("an event with its fields twice went to proto.Unmarshal")
	}
}

func TestDecodePutStatsFallsBack(t *testing.T) {
	base := codecRequest(2)
	cases := map[string][]byte{
		"unknown request field": protowire.AppendVarint(protowire.AppendTag(append([]byte{}, base...), 2, protowire.VarintType), 1),
		"unknown event field": protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)),
		"invalid UTF-8": protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff, 0xfe})),
		"wrong wire type": protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 5)),
		"truncated":    base[:len(base)-3],
		"field zero":   {0x00, 0x01},
		"garbage":      {0xff, 0xff, 0xff},
		"group":        protowire.AppendTag(nil, 1, protowire.StartGroupType),
		"empty string": {},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) { checkDecode(t, data) })
	}
}

// FuzzDecodePutStatsMatchesProto holds the codec's reading of a PutStats request to
// proto.Unmarshal's: the same request, or the same error.
func FuzzDecodePutStatsMatchesProto(f *testing.F) {
	for _, n := range []int{0, 1, 3, 8} {
		f.Add(codecRequest(n))
	}
	f.Add([]byte{0x0a, 0x02, 0x2a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x22, 0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, data) })
}

// BenchmarkDecodePutStats compares the codec's reading of a 100-event request with the
// protobuf codec's.
func BenchmarkDecodePutStats(b *testing.B) {
	data := codecRequest(100)
	for _, c := range []struct {
		name  string
		codec interface {
			Unmarshal(mem.BufferSlice, any) error
		}
	}{{"codec", Codec{}}, {"proto", protoCodec()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &ingestv1.PutStatsRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
