package e2e

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

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
	var bad []stack.Crafted
	third := len(lines) / 3
	mustSend(t, producer, lines[:third], false)
	round1 := stack.CraftedRecords(t, rng, players, 1)
	if err := stack.PutCrafted(t.Context(), p.Kinesis, p.Stream, round1); err != nil {
		t.Fatal(err)
	}
	mustSend(t, producer, lines[third:2*third], true)
	round2 := stack.CraftedRecords(t, rng, players, 2)
	if err := stack.PutCrafted(t.Context(), p.Kinesis, p.Stream, round2); err != nil {
		t.Fatal(err)
	}
	mustSend(t, producer, lines[2*third:], false)
	bad = append(append(bad, round1...), round2...)

	// The test covers what it claims: crafted records in every shard, between valid events.
	shardsHit := map[string]int{}
	for _, c := range bad {
		shardsHit[c.Shard]++
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
		got := byPos[pos{c.Shard, c.Sequence}]
		if len(got) != 1 {
			t.Errorf("%s at %s/%s: %d dead letters, want 1", c.Name, c.Shard, c.Sequence, len(got))
			continue
		}
		d := got[0]
		t.Logf("%s: dead letter stage %q reason %q", c.Name, d.Stage, d.Reason)
		if d.Stage != "load" && !bytes.Equal(d.Payload, c.Data) {
			t.Errorf("%s: dead-letter payload is not the record's bytes (%d bytes, want %d)", c.Name, len(d.Payload), len(c.Data))
		}
		delete(byPos, pos{c.Shard, c.Sequence})
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
