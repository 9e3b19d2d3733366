package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// TestChaos: while producers send ~20,000 events, every service is SIGKILLed several times
// at random moments (and restarted by the supervisor), PostgreSQL is restarted and
// kinesalite is killed and restarted on its port and data. Afterwards every accepted line
// is in the warehouse exactly once, with its greatest version.
func TestChaos(t *testing.T) {
	kinesalite := kinesalitetest.Launch(t, kinesalitetest.Options{DataDir: t.TempDir()})
	pg := pgtest.StartServer(t)
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 4, Kinesalite: &kinesalite.Server,
		Config: stack.Config{DatabaseURL: pg.CreateDatabase(t, "warehouse"),
			Env: map[string][]string{stack.Gateway: gatewayFlags, stack.Consumer: consumerLeaseFlags}}})
	supervised(p)

	rng := rand.New(rand.NewPCG(20240328, 7))
	w := makeWorkload(rng, 100, 190, 100) // 19,000 lines, with duplicates and corrections > 20,000 events
	if w.events < 20000 {
		t.Fatalf("workload has %d events, want at least 20,000", w.events)
	}
	led, produced := producing(t, p, w, 4, 500*time.Millisecond, 4*time.Minute)

	// The faults: each service killed three times, PostgreSQL restarted once, kinesalite
	// killed and restarted once, in a random order at random moments.
	type fault struct{ what string }
	var faults []fault
	for range 3 {
		for _, name := range stack.Services {
			faults = append(faults, fault{name})
		}
	}
	faults = append(faults, fault{"postgresql"}, fault{"kinesalite"})
	rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })

	var report []string
	for i, f := range faults {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		at := time.Now()
		switch f.what {
		case "postgresql":
			pg.Restart(t)
		case "kinesalite":
			kinesalite.Kill(t)
			time.Sleep(time.Second)
			kinesalite.Start(t)
		default:
			p.Kill(f.what)
			if err := p.WaitReady(f.what, 60*time.Second); err != nil {
				p.DumpLogs()
				t.Fatalf("%s did not come back after a kill: %v", f.what, err)
			}
		}
		ready := time.Since(at)
		flowing, err := probe(p, led, i, at, 60*time.Second)
		if err != nil {
			p.DumpLogs()
			t.Fatalf("after %s: %v", f.what, err)
		}
		report = append(report, fmt.Sprintf("%-15s back in %6s, a probe sent then was in the warehouse %6s after the fault",
			f.what, ready.Round(time.Millisecond), flowing.Round(time.Millisecond)))
	}
	produced(t)
	if t.Failed() {
		return
	}
	t.Logf("recovery after each fault:\n  %s", strings.Join(report, "\n  "))
	for _, name := range stack.Services {
		t.Logf("%s: %d restarts", name, p.Restarts(name))
		if p.Restarts(name) < 3 {
			t.Errorf("%s restarted %d times, want at least 3", name, p.Restarts(name))
		}
	}
	posts, retries := led.Posts()
	t.Logf("%d POSTs, %d retries", posts, retries)

	p.Settle(2 * time.Minute)
	p.AssertExactlyOnce(led)
	p.AssertEveryShardUsed(led)
}

// TestPoisonRecordAmongTenThousand: garbage bytes written straight to the stream cost one
// dead letter (stage decode), not the shard and not a good line.
func TestPoisonRecordAmongTenThousand(t *testing.T) {
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2,
		Config: stack.Config{Env: map[string][]string{stack.Gateway: gatewayFlags}}})
	supervised(p)

	rng := rand.New(rand.NewPCG(1, 2))
	var lines []stack.Line
	for g := range 100 {
		date := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g)
		for pl := range 100 {
			lines = append(lines, stack.RandomLine(rng, "poison", int64(200000+pl), fmt.Sprintf("P%03d", g), date.Format("2006-01-02"), 1))
		}
	}
	var w workload
	for i := 0; i < len(lines); i += 250 {
		w.batches = append(w.batches, lines[i:min(i+250, len(lines))])
	}
	w.refused = [][]stack.Line{{stack.RandomLine(rng, "poison", 299999, "REFUSED", "2024-09-30", 1)}}
	led, produced := producing(t, p, w, 2, 0, 2*time.Minute)

	// The poison goes in while good lines flow, on a partition key that puts it among them.
	time.Sleep(500 * time.Millisecond)
	poison, err := p.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(p.Stream),
		PartitionKey: aws.String("200007"), Data: []byte("\xff\x00not an envelope\x13\x37")})
	if err != nil {
		t.Fatalf("PutRecord poison: %v", err)
	}
	produced(t)
	if t.Failed() {
		return
	}
	p.Settle(90 * time.Second)
	if got := p.Count("SELECT count(*) FROM boxscore.fact_batting_game"); got != 10000 {
		t.Errorf("fact rows = %d, want 10000", got)
	}
	if got := p.Count("SELECT count(*) FROM boxscore.fact_batting_game WHERE game_id = 'REFUSED'"); got != 0 {
		t.Errorf("%d rows from refused events", got)
	}
	if n := led.AcceptedCount(); n != 10000 {
		t.Errorf("%d events accepted, want 10000", n)
	}

	dead := p.DeadLetters()
	if len(dead) != 1 {
		t.Fatalf("dead letters = %+v, want the poison alone", dead)
	}
	d := dead[0]
	if d.Stage != "decode" || d.Reason == "" || d.Shard != aws.ToString(poison.ShardId) || d.Sequence != aws.ToString(poison.SequenceNumber) ||
		string(d.Payload) != "\xff\x00not an envelope\x13\x37" {
		t.Fatalf("dead letter: stage %q reason %q at %s/%s payload %q; want decode at %s/%s with the bytes",
			d.Stage, d.Reason, d.Shard, d.Sequence, d.Payload, aws.ToString(poison.ShardId), aws.ToString(poison.SequenceNumber))
	}
	for _, name := range stack.Services {
		if n := p.Restarts(name); n != 0 {
			t.Errorf("%s restarted %d times on a poison record", name, n)
		}
	}
}

// TestWarehouseDownThirtySeconds: PostgreSQL stops for 30 s mid-stream. Nothing is
// dead-lettered (an outage is not the data's fault) and nothing is lost.
func TestWarehouseDownThirtySeconds(t *testing.T) {
	pg := pgtest.StartServer(t)
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2,
		Config: stack.Config{DatabaseURL: pg.CreateDatabase(t, "warehouse"), Env: map[string][]string{stack.Gateway: gatewayFlags}}})
	supervised(p)

	rng := rand.New(rand.NewPCG(3, 4))
	w := makeWorkload(rng, 50, 80, 100)
	// Paced so that the stream keeps growing while the warehouse is down.
	led, produced := producing(t, p, w, 2, 1200*time.Millisecond, 3*time.Minute)

	p.WaitFor(30*time.Second, "the first rows", func() bool {
		n, err := rowsLoadedSince(p, time.Time{})
		return err == nil && n > 0
	})
	pg.Stop(t)
	down := time.Now()
	time.Sleep(30 * time.Second)
	pg.Start(t)
	flowing, err := flowingAgain(p, time.Now(), 60*time.Second)
	if err != nil {
		p.DumpLogs()
		t.Fatalf("after PostgreSQL came back: %v", err)
	}
	t.Logf("PostgreSQL down for %s; rows committed again %s after it came back", time.Since(down).Round(time.Second), flowing.Round(time.Millisecond))
	produced(t)
	if t.Failed() {
		return
	}
	p.Settle(90 * time.Second)
	p.AssertExactlyOnce(led)
	if got := p.Count("SELECT count(*) FROM boxscore.dead_letter WHERE stage <> 'validate'"); got != 0 {
		t.Errorf("%d dead letters during an outage, want none: no bad record was sent", got)
	}
}

// TestRollingRestartLosesAndDuplicatesNothing: each service in turn gets SIGTERM (as in a
// rolling deployment) and is restarted by the supervisor while events flow.
func TestRollingRestartLosesAndDuplicatesNothing(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	env := map[string][]string{}
	for _, name := range stack.Services {
		env[name] = []string{"--shutdown-timeout", shutdownTimeout.String()}
	}
	env[stack.Gateway] = append(env[stack.Gateway], gatewayFlags...)
	env[stack.Consumer] = append(env[stack.Consumer], consumerLeaseFlags...)
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2, Config: stack.Config{Env: env}})
	supervised(p)

	rng := rand.New(rand.NewPCG(5, 6))
	w := makeWorkload(rng, 50, 60, 50)
	led, produced := producing(t, p, w, 2, 250*time.Millisecond, 3*time.Minute)

	order := []string{stack.Loader, stack.Transformer, stack.Consumer, stack.Gateway}
	for _, name := range order {
		time.Sleep(1500 * time.Millisecond)
		exit, ok := p.Terminate(name, shutdownTimeout+5*time.Second)
		if !ok {
			t.Fatalf("%s was not running", name)
		}
		if exit.Signal != syscall.SIGTERM || exit.Err != nil || exit.Code != 0 || exit.After > shutdownTimeout {
			t.Errorf("%s: %v; want exit 0 within %s of SIGTERM\n%s", name, exit, shutdownTimeout, p.LogTail(name, 20))
		} else {
			t.Logf("%s exited 0 %s after SIGTERM", name, exit.After.Round(time.Millisecond))
		}
		if err := p.WaitReady(name, 60*time.Second); err != nil {
			t.Fatalf("%s not back: %v", name, err)
		}
	}
	produced(t)
	if t.Failed() {
		return
	}
	p.Settle(90 * time.Second)
	p.AssertExactlyOnce(led)
	for _, name := range stack.Services {
		var unexpected []string
		for _, x := range p.Exits(name) {
			if x.Signal != syscall.SIGTERM {
				unexpected = append(unexpected, x.String())
			}
		}
		sort.Strings(unexpected)
		if len(unexpected) > 0 {
			t.Errorf("%s exited without being asked: %v", name, unexpected)
		}
	}
}
