package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Crafted is a record written straight to the stream, past the gateway's checks: one the
// gateway would never write, which the pipeline must turn into exactly one dead letter.
type Crafted struct {
	Name string // what is wrong with it
	Key  string // partition key: a player's, so it shares a shard with valid events
	Data []byte
	// Where Kinesis put it (set by PutCrafted).
	Shard, Sequence string
}

// StatEvent is the line as the gateway would have made it, before any crafting.
func StatEvent(t testing.TB, l Line) *statsv1.StatEvent {
	t.Helper()
	js, err := json.Marshal(l.Event())
	if err != nil {
		t.Fatal(err)
	}
	ev := &statsv1.StatEvent{}
	if err := protojson.Unmarshal(js, ev); err != nil {
		t.Fatalf("line %s as a StatEvent: %v", l.EventID, err)
	}
	return ev
}

// Envelope encodes ev in a stream envelope of the given content type.
func Envelope(t testing.TB, ev *statsv1.StatEvent, contentType string) []byte {
	t.Helper()
	payload, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(&streamv1.Envelope{ContentType: contentType, Payload: payload, EventId: ev.GetEventId(), AcceptedAt: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// InvalidUTF8 replaces the marker (which proto.Marshal accepted) with bytes of the same
// length that are not UTF-8, so every length prefix stays right: a string field holding
// invalid UTF-8, which proto.Marshal refuses to write and a non-Go producer may.
func InvalidUTF8(t testing.TB, data []byte, marker string) []byte {
	t.Helper()
	if bytes.Count(data, []byte(marker)) == 0 {
		t.Fatalf("marker %q not in the encoding", marker)
	}
	return bytes.ReplaceAll(data, []byte(marker), bytes.Repeat([]byte{0xff}, len(marker)))
}

// CraftedRecords makes one record of every kind the gateway would never write — a NUL byte
// in the event id and in a name, invalid UTF-8 in the event and in the envelope, oversize
// fields, a wrong envelope version, undecodable bytes, an impossible line — keyed by the
// players (so spread over the shards) and named uniquely by round.
func CraftedRecords(t testing.TB, rng *rand.Rand, players []int64, round int) []Crafted {
	t.Helper()
	const ct = statevent.ContentTypeStatEventProto
	line := func(i int, what string) Line {
		p := players[i%len(players)]
		return RandomLine(rng, fmt.Sprintf("crafted-%s-r%d", what, round), p, fmt.Sprintf("CRAFTED-R%d-%d", round, i), "2024-10-01", 1)
	}
	var out []Crafted
	add := func(i int, name string, data []byte) {
		out = append(out, Crafted{Name: fmt.Sprintf("%s (round %d)", name, round), Key: line(i, "key").PartitionKey(), Data: data})
	}

	ev := StatEvent(t, line(0, "nul"))
	ev.EventId = fmt.Sprintf("crafted-nul-r%d\x00tail", round)
	add(0, "NUL in the event id", Envelope(t, ev, ct))

	ev = StatEvent(t, line(1, "nulname"))
	ev.Player.Name = "Nul\x00Name"
	add(1, "NUL in the player name", Envelope(t, ev, ct))

	ev = StatEvent(t, line(2, "utf8name"))
	ev.Player.Name = "QQQQ-name-marker"
	payload, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(&streamv1.Envelope{ContentType: ct, Payload: InvalidUTF8(t, payload, "QQQQ-name-marker"), EventId: ev.GetEventId()})
	if err != nil {
		t.Fatal(err)
	}
	add(2, "invalid UTF-8 in the player name", data)

	ev = StatEvent(t, line(3, "utf8id"))
	ev.EventId = fmt.Sprintf("crafted-utf8id-r%d-ZZZZmarker", round)
	add(3, "invalid UTF-8 in the envelope event id", InvalidUTF8(t, Envelope(t, ev, ct), "ZZZZmarker"))

	ev = StatEvent(t, line(4, "bigname"))
	ev.Player.Name = strings.Repeat("N", 200<<10)
	add(4, "a 200 KiB player name", Envelope(t, ev, ct))
	ev = StatEvent(t, line(5, "bigid"))
	ev.EventId = fmt.Sprintf("crafted-bigid-r%d-", round) + strings.Repeat("i", 20<<10)
	add(5, "a 20 KiB event id", Envelope(t, ev, ct))

	add(6, "a wrong envelope version", Envelope(t, StatEvent(t, line(6, "v2")), "application/x-protobuf; proto=boxscore.stats.v2.StatEvent"))

	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	garbage[0] = 0xff // an invalid field key: never decodes
	add(7, "undecodable bytes", garbage)

	// A well-formed line that breaks a consistency rule: the gateway refuses it at the door
	// (422), so only a record written past it reaches the transformer's own check.
	impossible := ImpossibleLine(fmt.Sprintf("crafted-impossible-r%d", round), players[8%len(players)], fmt.Sprintf("CRAFTED-R%d-8", round), "2024-10-01")
	add(8, "an impossible line (more hits than at bats)", Envelope(t, StatEvent(t, impossible), ct))
	return out
}

// PutCrafted writes the records with one PutRecords call, straight to the stream, and
// notes where each landed. It is not retried: a retry of a call that did land would put
// the records twice.
func PutCrafted(ctx context.Context, client *kinesis.Client, streamName string, recs []Crafted) error {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(streamName)}
	for _, r := range recs {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(r.Key), Data: r.Data})
	}
	out, err := client.PutRecords(ctx, in)
	if err != nil {
		return fmt.Errorf("PutRecords: %w", err)
	}
	if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
		return fmt.Errorf("PutRecords: %d of %d failed", n, len(recs))
	}
	for i, e := range out.Records {
		recs[i].Shard, recs[i].Sequence = aws.ToString(e.ShardId), aws.ToString(e.SequenceNumber)
	}
	return nil
}
