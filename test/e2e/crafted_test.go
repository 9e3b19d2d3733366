package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// crafted is a record written straight to the stream, past the gateway's checks.
type crafted struct {
	name string // what is wrong with it
	key  string // partition key: a player of the test, so it shares a shard with valid events
	data []byte
	// where Kinesis put it
	shard, seq string
}

// statEvent is the line as the gateway would have made it, before any crafting.
func statEvent(t *testing.T, l stack.Line) *statsv1.StatEvent {
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

func envelope(t *testing.T, ev *statsv1.StatEvent, contentType string) []byte {
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

// invalidUTF8 replaces the marker (which proto.Marshal accepted) with bytes of the same
// length that are not UTF-8, so every length prefix stays right: a string field holding
// invalid UTF-8, which proto.Marshal refuses to write and a non-Go producer may.
func invalidUTF8(t *testing.T, data []byte, marker string) []byte {
	t.Helper()
	bad := bytes.Repeat([]byte{0xff}, len(marker))
	if bytes.Count(data, []byte(marker)) == 0 {
		t.Fatalf("marker %q not in the encoding", marker)
	}
	return bytes.ReplaceAll(data, []byte(marker), bad)
}

// craftedRecords makes one record of every kind the gateway would never write, keyed by
// the players (so spread over the shards) and named uniquely by round.
func craftedRecords(t *testing.T, rng *rand.Rand, players []int64, round int) []crafted {
	t.Helper()
	const ct = statevent.ContentTypeStatEventProto
	line := func(i int, what string) stack.Line {
		p := players[i%len(players)]
		return stack.RandomLine(rng, fmt.Sprintf("crafted-%s-r%d", what, round), p, fmt.Sprintf("LAN2024100%d%d", round, i%10), "2024-10-01", 1)
	}
	var out []crafted
	add := func(i int, name string, data []byte) {
		out = append(out, crafted{name: fmt.Sprintf("%s (round %d)", name, round), key: line(i, "key").PartitionKey(), data: data})
	}

	// A NUL byte in the event id, in the envelope and the event: decodes, valid UTF-8,
	// but PostgreSQL text cannot hold it.
	ev := statEvent(t, line(0, "nul"))
	ev.EventId = fmt.Sprintf("crafted-nul-r%d\x00tail", round)
	add(0, "NUL in the event id", envelope(t, ev, ct))

	// A NUL byte in the player's name of an otherwise valid event.
	ev = statEvent(t, line(1, "nulname"))
	ev.Player.Name = "Nul\x00Name"
	add(1, "NUL in the player name", envelope(t, ev, ct))

	// Invalid UTF-8 in the event's player name (inside the payload).
	ev = statEvent(t, line(2, "utf8name"))
	ev.Player.Name = "QQQQ-name-marker"
	payload, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(&streamv1.Envelope{ContentType: ct, Payload: invalidUTF8(t, payload, "QQQQ-name-marker"), EventId: ev.GetEventId()})
	if err != nil {
		t.Fatal(err)
	}
	add(2, "invalid UTF-8 in the player name", data)

	// Invalid UTF-8 in the envelope's own event id.
	ev = statEvent(t, line(3, "utf8id"))
	ev.EventId = fmt.Sprintf("crafted-utf8id-r%d-ZZZZmarker", round)
	add(3, "invalid UTF-8 in the envelope event id", invalidUTF8(t, envelope(t, ev, ct), "ZZZZmarker"))

	// Oversize fields: a 200 KiB player name, a 20 KiB event id.
	ev = statEvent(t, line(4, "bigname"))
	ev.Player.Name = strings.Repeat("N", 200<<10)
	add(4, "a 200 KiB player name", envelope(t, ev, ct))
	ev = statEvent(t, line(5, "bigid"))
	ev.EventId = fmt.Sprintf("crafted-bigid-r%d-", round) + strings.Repeat("i", 20<<10)
	add(5, "a 20 KiB event id", envelope(t, ev, ct))

	// A wrong envelope version: a StatEvent of a version this pipeline does not know.
	add(6, "a wrong envelope version", envelope(t, statEvent(t, line(6, "v2")), "application/x-protobuf; proto=boxscore.stats.v2.StatEvent"))

	// Bytes that are no envelope at all.
	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	garbage[0] = 0xff // an invalid field key: never decodes
	add(7, "undecodable bytes", garbage)
	return out
}

// putCrafted writes the records with PutRecords, straight to the stream, and notes where
// each landed.
func putCrafted(t *testing.T, client *kinesis.Client, streamName string, recs []crafted) {
	t.Helper()
	in := &kinesis.PutRecordsInput{StreamName: aws.String(streamName)}
	for _, r := range recs {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(r.key), Data: r.data})
	}
	out, err := client.PutRecords(context.Background(), in)
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
		t.Fatalf("PutRecords: %d of %d failed", n, len(recs))
	}
	for i, e := range out.Records {
		recs[i].shard, recs[i].seq = aws.ToString(e.ShardId), aws.ToString(e.SequenceNumber)
	}
}

// Records the gateway would never write — a NUL byte in the event id or a name, invalid
// UTF-8 in a string field, oversize fields, a wrong envelope version, undecodable bytes —
// put straight on the stream among valid events on the same shards: each is exactly one
// dead letter, each valid event exactly one row, and every shard's checkpoint reaches the
// end of the stream (no shard stalls).
func TestCraftedRecordsAreDeadLetteredAndNeverStallAShard(t *testing.T) {
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2})
	p.StartAll()
	led := stack.NewLedger()
	producer := stack.NewProducer(p.GatewayURL(), led)
	rng := rand.New(rand.NewPCG(11, 11))

	players := stack.PlayersOverShards(t, p.Kinesis, p.Stream, 670000, 2)
	lines := season(rng, players, 12) // 48 lines, 4 players (2 per shard) x 12 games
	var bad []crafted
	third := len(lines) / 3
	mustSend(t, producer, lines[:third], false)
	round1 := craftedRecords(t, rng, players, 1)
	putCrafted(t, p.Kinesis, p.Stream, round1)
	mustSend(t, producer, lines[third:2*third], true)
	round2 := craftedRecords(t, rng, players, 2)
	putCrafted(t, p.Kinesis, p.Stream, round2)
	mustSend(t, producer, lines[2*third:], false)
	bad = append(append(bad, round1...), round2...)

	// The test covers what it claims: crafted records in every shard, between valid events.
	shardsHit := map[string]int{}
	for _, c := range bad {
		shardsHit[c.shard]++
	}
	for shard := range led.EventsPerShard() {
		if shardsHit[shard] == 0 {
			t.Fatalf("no crafted record in shard %s (%v)", shard, shardsHit)
		}
	}

	p.Settle(3 * time.Minute)

	// Every valid event: exactly one row, in the shard the gateway acknowledged.
	rows := p.Rows()
	for _, l := range led.Accepted() {
		if _, ok := rows[l.EventID]; !ok {
			t.Errorf("valid event %s has no row", l.EventID)
		}
	}
	if len(rows) != led.AcceptedCount() {
		t.Errorf("%d rows, want %d (one per valid event)", len(rows), led.AcceptedCount())
	}
	for id := range rows {
		if strings.HasPrefix(id, "crafted") {
			t.Errorf("a crafted record became a row: %q", id)
		}
	}

	// Every crafted record: exactly one dead letter, at its position, with its bytes.
	type pos struct{ shard, seq string }
	byPos := map[pos][]stack.DeadLetter{}
	letters := p.DeadLetters()
	for _, d := range letters {
		byPos[pos{d.Shard, d.Sequence}] = append(byPos[pos{d.Shard, d.Sequence}], d)
	}
	for _, c := range bad {
		got := byPos[pos{c.shard, c.seq}]
		if len(got) != 1 {
			t.Errorf("%s at %s/%s: %d dead letters, want 1", c.name, c.shard, c.seq, len(got))
			continue
		}
		d := got[0]
		t.Logf("%s: dead letter stage %q reason %q", c.name, d.Stage, d.Reason)
		if d.Stage != "load" && !bytes.Equal(d.Payload, c.data) {
			t.Errorf("%s: dead-letter payload is not the record's bytes (%d bytes, want %d)", c.name, len(d.Payload), len(c.data))
		}
		delete(byPos, pos{c.shard, c.seq})
	}
	for at, ds := range byPos {
		for _, d := range ds {
			t.Errorf("dead letter at %s/%s for no crafted record: %q stage %s reason %s", at.shard, at.seq, d.EventID, d.Stage, d.Reason)
		}
	}
	if len(letters) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(letters), len(bad))
	}
}
