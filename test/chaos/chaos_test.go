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

// gatewayFlags keep clients' waits short (Retry-After derives from the retry budget): the
// stream is down for seconds, not minutes.
var gatewayFlags = []string{"--publish-retry-budget", "5s"}

// TestChaos: while producers send ~20,000 events, every service is SIGKILLed several times
// at random moments (and restarted by the supervisor), PostgreSQL is restarted and
// kinesalite is killed and restarted on its port and data. Afterwards every accepted line
// is in the warehouse exactly once, with its greatest version.
func TestChaos(t *testing.T) {
	kinesalite := kinesalitetest.Launch(t, kinesalitetest.Options{DataDir: t.TempDir()})
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, 4)
	pg := pgtest.StartServer(t)
	dbURL := pg.CreateDatabase(t, "warehouse")

	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL,
		Env: map[string][]string{stack.Gateway: gatewayFlags, stack.Consumer: consumerLeaseFlags(dbURL)}})
	supervised(t, s)
	e := newEnv(t, s, streamName, kinesalite.Client(t), dbURL)
	e.schemaReady()

	rng := rand.New(rand.NewPCG(20240328, 7))
	w := makeWorkload(rng, 100, 190, 100) // 19,000 lines, with duplicates and corrections > 20,000 events
	if w.events < 20000 {
		t.Fatalf("workload has %d events, want at least 20,000", w.events)
	}
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	produced := producing(ctx, led, s.GatewayURL(), w, 4, 500*time.Millisecond)

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
			s.Kill(f.what)
			if err := s.WaitReady(f.what, 60*time.Second); err != nil {
				e.dumpLogs()
				t.Fatalf("%s did not come back after a kill: %v", f.what, err)
			}
		}
		ready := time.Since(at)
		flowing, err := e.probe(led, i, at, 60*time.Second)
		if err != nil {
			e.dumpLogs()
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
		t.Logf("%s: %d restarts", name, s.Restarts(name))
		if s.Restarts(name) < 3 {
			t.Errorf("%s restarted %d times, want at least 3", name, s.Restarts(name))
		}
	}
	t.Logf("%d POSTs, %d retries", led.posts, led.retries)

	e.settle(2 * time.Minute)
	e.assertExactlyOnce(led)
}

// TestPoisonRecordAmongTenThousand: garbage bytes written straight to the stream cost one
// dead letter (stage decode), not the shard and not a good line.
func TestPoisonRecordAmongTenThousand(t *testing.T) {
	kinesalite := kinesalitetest.Start(t)
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, 2)
	dbURL := pgtest.NewDatabase(t)
	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL,
		Env: map[string][]string{stack.Gateway: gatewayFlags}})
	supervised(t, s)
	client := kinesalite.Client(t)
	e := newEnv(t, s, streamName, client, dbURL)

	rng := rand.New(rand.NewPCG(1, 2))
	var lines []line
	for g := range 100 {
		date := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g)
		for p := range 100 {
			lines = append(lines, randomLine(rng, int64(200000+p), fmt.Sprintf("P%03d", g), date.Format("2006-01-02"), 1))
		}
	}
	var w workload
	for i := 0; i < len(lines); i += 250 {
		w.batches = append(w.batches, lines[i:min(i+250, len(lines))])
	}
	w.refused = [][]line{{randomLine(rng, 299999, "REFUSED", "2024-09-30", 1)}}
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	produced := producing(ctx, led, s.GatewayURL(), w, 2, 0)

	// The poison goes in while good lines flow, on a partition key that puts it among them.
	time.Sleep(500 * time.Millisecond)
	poison, err := client.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(streamName),
		PartitionKey: aws.String("200007"), Data: []byte("\xff\x00not an envelope\x13\x37")})
	if err != nil {
		t.Fatalf("PutRecord poison: %v", err)
	}
	produced(t)
	if t.Failed() {
		return
	}
	e.settle(90 * time.Second)
	e.assertRowsAndDeadLetters(led, 10000)

	var stage, reason, shard, seq string
	var payload []byte
	if err := e.db.QueryRow(context.Background(), "SELECT stage, reason, shard_id, sequence_number, payload FROM boxscore.dead_letter").
		Scan(&stage, &reason, &shard, &seq, &payload); err != nil {
		t.Fatalf("the one dead letter: %v", err)
	}
	if stage != "decode" || reason == "" || shard != aws.ToString(poison.ShardId) || seq != aws.ToString(poison.SequenceNumber) ||
		string(payload) != "\xff\x00not an envelope\x13\x37" {
		t.Fatalf("dead letter: stage %q reason %q at %s/%s payload %q; want decode at %s/%s with the bytes",
			stage, reason, shard, seq, payload, aws.ToString(poison.ShardId), aws.ToString(poison.SequenceNumber))
	}
	for _, name := range stack.Services {
		if n := s.Restarts(name); n != 0 {
			t.Errorf("%s restarted %d times on a poison record", name, n)
		}
	}
}

// assertRowsAndDeadLetters checks exactly-once for a workload without impossible lines and
// counts: rows facts, and one dead letter per poison record (counted by the caller).
func (e *env) assertRowsAndDeadLetters(led *ledger, rows int) {
	e.t.Helper()
	if got := e.count("SELECT count(*) FROM boxscore.fact_batting_game"); got != rows {
		e.t.Errorf("fact rows = %d, want %d", got, rows)
	}
	if got := e.count("SELECT count(*) FROM boxscore.dead_letter"); got != 1 {
		e.t.Errorf("dead letters = %d, want 1", got)
	}
	if got := e.count("SELECT count(*) FROM boxscore.fact_batting_game WHERE game_id = 'REFUSED'"); got != 0 {
		e.t.Errorf("%d rows from refused events", got)
	}
	if len(led.accepted) != rows {
		e.t.Errorf("%d events accepted, want %d", len(led.accepted), rows)
	}
}

// TestWarehouseDownThirtySeconds: PostgreSQL stops for 30 s mid-stream. Nothing is
// dead-lettered (an outage is not the data's fault) and nothing is lost.
func TestWarehouseDownThirtySeconds(t *testing.T) {
	kinesalite := kinesalitetest.Start(t)
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, 2)
	pg := pgtest.StartServer(t)
	dbURL := pg.CreateDatabase(t, "warehouse")
	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL,
		Env: map[string][]string{stack.Gateway: gatewayFlags}})
	supervised(t, s)
	e := newEnv(t, s, streamName, kinesalite.Client(t), dbURL)
	e.schemaReady()

	rng := rand.New(rand.NewPCG(3, 4))
	w := makeWorkload(rng, 50, 80, 100)
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Paced so that the stream keeps growing while the warehouse is down.
	produced := producing(ctx, led, s.GatewayURL(), w, 2, 1200*time.Millisecond)

	e.waitFor(30*time.Second, "the first rows", func() bool {
		n, err := e.rowsLoadedSince(time.Time{})
		return err == nil && n > 0
	})
	pg.Stop(t)
	down := time.Now()
	time.Sleep(30 * time.Second)
	pg.Start(t)
	flowing, err := e.flowingAgain(time.Now(), 60*time.Second)
	if err != nil {
		e.dumpLogs()
		t.Fatalf("after PostgreSQL came back: %v", err)
	}
	t.Logf("PostgreSQL down for %s; rows committed again %s after it came back", time.Since(down).Round(time.Second), flowing.Round(time.Millisecond))
	produced(t)
	if t.Failed() {
		return
	}
	e.settle(90 * time.Second)
	e.assertExactlyOnce(led)
	if got := e.count("SELECT count(*) FROM boxscore.dead_letter WHERE stage <> 'validate'"); got != 0 {
		t.Errorf("%d dead letters other than the impossible lines during an outage", got)
	}
}

// TestRollingRestartLosesAndDuplicatesNothing: each service in turn gets SIGTERM (as in a
// rolling deployment) and is restarted by the supervisor while events flow.
func TestRollingRestartLosesAndDuplicatesNothing(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	kinesalite := kinesalitetest.Start(t)
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, 2)
	dbURL := pgtest.NewDatabase(t)
	env := map[string][]string{}
	for _, name := range stack.Services {
		env[name] = []string{"--shutdown-timeout", shutdownTimeout.String()}
	}
	env[stack.Gateway] = append(env[stack.Gateway], gatewayFlags...)
	env[stack.Consumer] = append(env[stack.Consumer], consumerLeaseFlags(dbURL)...)
	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL, Env: env})
	supervised(t, s)
	e := newEnv(t, s, streamName, kinesalite.Client(t), dbURL)
	e.schemaReady()

	rng := rand.New(rand.NewPCG(5, 6))
	w := makeWorkload(rng, 50, 60, 50)
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	produced := producing(ctx, led, s.GatewayURL(), w, 2, 250*time.Millisecond)

	order := []string{stack.Loader, stack.Transformer, stack.Consumer, stack.Gateway}
	for _, name := range order {
		time.Sleep(1500 * time.Millisecond)
		exit, ok := s.Terminate(name, shutdownTimeout+5*time.Second)
		if !ok {
			t.Fatalf("%s was not running", name)
		}
		if exit.Signal != syscall.SIGTERM || exit.Err != nil || exit.Code != 0 || exit.After > shutdownTimeout {
			t.Errorf("%s: %v; want exit 0 within %s of SIGTERM\n%s", name, exit, shutdownTimeout, s.LogTail(name, 20))
		} else {
			t.Logf("%s exited 0 %s after SIGTERM", name, exit.After.Round(time.Millisecond))
		}
		if err := s.WaitReady(name, 60*time.Second); err != nil {
			t.Fatalf("%s not back: %v", name, err)
		}
	}
	produced(t)
	if t.Failed() {
		return
	}
	e.settle(90 * time.Second)
	e.assertExactlyOnce(led)
	for _, name := range stack.Services {
		var unexpected []string
		for _, x := range s.Exits(name) {
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
