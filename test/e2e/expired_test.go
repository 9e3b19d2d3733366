package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// sendAcked POSTs lines once, requires a 202 acknowledging every event, and returns the
// first sequence number acknowledged in each shard.
func sendAcked(t *testing.T, p *stack.Producer, lines []stack.Line) map[string]string {
	t.Helper()
	a, err := p.Send(context.Background(), lines, stack.PostOptions{})
	if err != nil {
		t.Fatalf("POST of %d events: %v", len(lines), err)
	}
	if a.Status != http.StatusAccepted {
		t.Fatalf("POST of %d events: %d %s", len(lines), a.Status, a.Body)
	}
	first := map[string]string{}
	for _, r := range a.Results {
		if cur, ok := first[r.ShardID]; !ok || compareSeq(r.SequenceNumber, cur) < 0 {
			first[r.ShardID] = r.SequenceNumber
		}
	}
	return first
}

// compareSeq orders two sequence numbers (decimal strings of the same kind).
func compareSeq(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// Records that expire unread are a gap, never skipped silently. The consumer reads and
// checkpoints some events and is stopped; events A are put; kinesalite's clock moves 25
// hours on, past the stream's retention (24 h), so A and the checkpoints' records expire;
// events B are put; the consumer starts again. Then every shard has exactly one
// trim_horizon row in stream_gap, after its checkpoint and before its first B record, the
// consumer counts the gaps (boxscore_consumer_gaps_total) and logs them as errors, every
// B event is one row, no A event is loaded, and every checkpoint reaches its shard's end.
//
// The test runs a kinesalite of its own (moving the shared one's clock would expire every
// other test's records). kinesalite applies retention lazily: an expired record is left
// out of GetRecords pages and deleted then, never in the background as Kinesis trims. The
// test reads nothing from the stream between the clock move and the consumer's start, so
// the consumer meets the expired records still in place (the harder case: TRIM_HORIZON
// with Limit 1 answers an empty page, as for an empty shard).
//
// Against e2b760f (main before issue 11: BOXSCORE_STACK_SOURCE=an export of it; the old
// binaries take every flag the harness passes) it fails on the gap alone: every B event is
// one row, no A event is loaded and the checkpoints reach the end (kinesalite leaves the
// expired records out of the page read after the checkpoint), but
// boxscore_consumer_gaps_total{reason="trim_horizon"} is 0 (absent; want 2), no error log
// names a gap, and there is no stream_gap table: the A records were skipped silently.
func TestExpiredRecordsAreAGapNeverSilent(t *testing.T) {
	const shards = 2
	kin := kinesalitetest.Launch(t, kinesalitetest.Options{ClockControl: true})
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: shards, Kinesalite: &kin.Server})
	p.StartAll()
	players := stack.PlayersOverShards(t, p.Kinesis, p.Stream, 680000, 2)
	lines := season(rand.New(rand.NewPCG(2026, 25)), players, 30) // 4 players (2 a shard) x 30 games
	read, expired, after := lines[:40], lines[40:80], lines[80:]

	readLedger := stack.NewLedger()
	mustSend(t, stack.NewProducer(p.GatewayURL(), readLedger), read, false)
	p.WaitSchema()
	p.Settle(90 * time.Second)
	p.Stop(stack.Consumer, 30*time.Second)
	checkpoints, err := p.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for shard := range readLedger.EventsPerShard() {
		if checkpoints[shard].Sequence == "" {
			t.Fatalf("precondition: shard %s read but has no checkpoint (%v)", shard, checkpoints)
		}
	}
	if len(checkpoints) != shards {
		t.Fatalf("precondition: checkpoints of %d shards, want %d: %v", len(checkpoints), shards, checkpoints)
	}

	expiredLedger := stack.NewLedger()
	sendAcked(t, stack.NewProducer(p.GatewayURL(), expiredLedger), expired)
	kin.AdvanceClock(t, 25*time.Hour)
	afterLedger := stack.NewLedger()
	firstAfter := sendAcked(t, stack.NewProducer(p.GatewayURL(), afterLedger), after)
	if len(firstAfter) != shards {
		t.Fatalf("precondition: events B in %d shards, want %d", len(firstAfter), shards)
	}
	p.Start(stack.Consumer)

	p.WaitFor(90*time.Second, "every B event loaded", func() bool {
		return p.Count("SELECT count(*) FROM boxscore.fact_batting_game") >= len(read)+len(after)
	})
	p.Settle(60 * time.Second)

	// The data: every event read before and every B event exactly once, no A event.
	rows := p.Rows()
	for _, l := range readLedger.Accepted() {
		if _, ok := rows[l.EventID]; !ok {
			t.Errorf("event %s (read before the clock moved) has no row", l.EventID)
		}
	}
	for _, l := range afterLedger.Accepted() {
		if _, ok := rows[l.EventID]; !ok {
			t.Errorf("event %s (put after the clock moved) has no row", l.EventID)
		}
	}
	for _, l := range expiredLedger.Accepted() {
		if _, ok := rows[l.EventID]; ok {
			t.Errorf("expired event %s was loaded", l.EventID)
		}
	}
	if len(rows) != len(read)+len(after) {
		t.Errorf("%d rows, want %d", len(rows), len(read)+len(after))
	}
	if n := p.Count("SELECT count(*) FROM boxscore.dead_letter"); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}

	// The gap, per shard: one stream_gap row, the metric and an error log.
	m := p.Scrape(stack.Consumer)
	if got := m.Sum("boxscore_consumer_gaps_total", `reason="trim_horizon"`); got != shards {
		t.Errorf("boxscore_consumer_gaps_total{reason=\"trim_horizon\"} = %v, want %d (one per shard) [%s]", got, shards,
			m.Describe("boxscore_consumer_gaps_total"))
	}
	log := p.Log(stack.Consumer)
	for shard, cp := range checkpoints {
		var errors int
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, "trim_horizon") &&
				strings.Contains(l, `"shard_id":"`+shard+`"`) && strings.Contains(l, cp.Sequence) {
				errors++
			}
		}
		if errors == 0 {
			t.Errorf("shard %s: no error log of a trim_horizon gap after %s", shard, cp.Sequence)
		}
	}
	var table bool
	if err := p.DB.QueryRow(context.Background(), "SELECT to_regclass('boxscore.stream_gap') IS NOT NULL").Scan(&table); err != nil {
		t.Fatal(err)
	}
	if !table {
		t.Errorf("no boxscore.stream_gap table: the gap is recorded nowhere")
	} else {
		for shard, cp := range checkpoints {
			if n := p.Count(`SELECT count(*) FROM boxscore.stream_gap WHERE stream = $1 AND shard_id = $2 AND reason = 'trim_horizon'
				AND after_sequence_number = $3 AND before_sequence_number = $4`, p.Stream, shard, cp.Sequence, firstAfter[shard]); n != 1 {
				t.Errorf("shard %s: %d trim_horizon gaps after %s before %s, want 1", shard, n, cp.Sequence, firstAfter[shard])
			}
		}
		if n := p.Count(`SELECT count(*) FROM boxscore.stream_gap WHERE stream = $1`, p.Stream); n != shards {
			t.Errorf("stream_gap rows = %d, want %d (one per shard)", n, shards)
		}
	}
	if t.Failed() {
		if table {
			rows, err := p.DB.Query(context.Background(), `SELECT shard_id, reason, after_sequence_number, before_sequence_number, coalesce(detail, '')
				FROM boxscore.stream_gap ORDER BY id`)
			if err == nil {
				for rows.Next() {
					var a, b, c, d, e string
					_ = rows.Scan(&a, &b, &c, &d, &e)
					t.Logf("stream_gap: %s %s after=%s before=%s: %s", a, b, c, d, e)
				}
				rows.Close()
			}
		}
		p.DumpLogs()
	}
}
