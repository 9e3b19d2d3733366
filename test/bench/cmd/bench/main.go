// Command bench measures the Boxscore pipeline on this machine with default settings, and
// the ceilings of what it runs on, in the same run: `make bench` (BENCH_EVENTS=N to size
// it). It starts kinesalite, a database of its own on the local PostgreSQL and the four
// services as processes (test/stack, release builds), sends a deterministic league-scale
// load through many concurrent HTTP and gRPC producers, and prints one table, also written
// as JSON (-out). It is a program, not a test, so `make test` never runs it; it asserts
// no speed: it measures.
//
// What it measures, in order:
//
//  1. gateway accepted events/s: -events events flooded into the gateway while no
//     consumer runs (they wait in the stream);
//  2. backlog drain: the consumer started on that backlog, timed until every row is in;
//  3. end to end while loading: -events/2 more events flooded with the pipeline running,
//     first POST to last row committed;
//  4. freshness (accepted_at to the load's commit, from the rows) at a steady 1,000
//     events/s, then at 80% of the end-to-end rate of 3;
//  5. the ceilings: the stream read back with a bare SDK reader (raw GetRecords), the
//     same records written into a new stream (raw PutRecords), the same rows
//     COPY-then-upserted into a copy of the fact table (raw PostgreSQL), and Kinesis's
//     own per-shard read limit for the records' size;
//
// with the CPU and peak RSS of every process (from /proc) over each phase.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

type options struct {
	events       int
	shards       int
	players      int
	httpProd     int
	grpcProd     int
	batch        int
	freshFor     time.Duration
	freshRate    float64
	seed         uint64
	out          string
	race         bool
	ceilingBatch int
	rev          string
	profile      string
	soak         time.Duration
	soakFraction float64
	soakSample   time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.events, "events", 100000, "events of the backlog (the end-to-end phase sends half as many more)")
	flag.IntVar(&o.shards, "shards", 4, "shards of the stream")
	flag.IntVar(&o.players, "players", 750, "players of the league (partition keys)")
	flag.IntVar(&o.httpProd, "http-producers", 16, "concurrent HTTP producers")
	flag.IntVar(&o.grpcProd, "grpc-producers", 16, "concurrent gRPC producers")
	flag.IntVar(&o.batch, "request-events", 100, "events per request of the flooding producers")
	flag.DurationVar(&o.freshFor, "freshness-duration", 15*time.Second, "how long each freshness phase sends")
	flag.Float64Var(&o.freshRate, "freshness-rate", 1000, "the fixed rate (events/s) of the first freshness phase")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the batting lines")
	flag.StringVar(&o.out, "out", "out/bench.json", "where the JSON report is written")
	flag.BoolVar(&o.race, "race", false, "build the services with -race, as the tests do (slow: for checking the bench, not for numbers)")
	flag.IntVar(&o.ceilingBatch, "ceiling-batch", 5000, "rows per transaction of the PostgreSQL ceiling")
	flag.StringVar(&o.rev, "rev", "", "measure this git revision (exported clean) instead of the working tree, e.g. HEAD")
	flag.StringVar(&o.profile, "profile", "", "write pprof profiles of the consumer, transformer and loader during the drain (CPU over its first 8s, heaps at 2s, 4s and 6s), and with -soak heap profiles of every service at a third, two thirds and the end of the soak, into this directory; the services run with --pprof")
	flag.DurationVar(&o.soak, "soak", 0, "after the freshness phases, send at -soak-rate of the end-to-end rate for this long (e.g. 5m) and sample every process's RSS: is memory flat? 0: no soak")
	flag.Float64Var(&o.soakFraction, "soak-rate", 0.8, "the soak's rate, as a fraction of the end-to-end rate")
	flag.DurationVar(&o.soakSample, "soak-sample", 5*time.Second, "how often the soak samples every process's RSS")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	t := newBenchTB()
	var rep *report
	ok := t.run(func() { rep = run(t, o) })
	t.cleanup()
	if rep != nil {
		rep.print(os.Stdout)
		if err := rep.write(o.out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("\nwritten to %s\n", o.out)
	}
	if !ok || t.Failed() {
		fmt.Fprintln(os.Stderr, "bench: FAILED (see the errors above)")
		os.Exit(1)
	}
}

func (o options) validate() error {
	var errs []string
	if o.events < 1000 {
		errs = append(errs, "-events must be at least 1000")
	}
	if o.shards < 1 || o.players < o.shards {
		errs = append(errs, "-shards must be positive and -players at least -shards")
	}
	if o.httpProd < 1 || o.grpcProd < 0 {
		errs = append(errs, "-http-producers must be positive, -grpc-producers not negative")
	}
	if o.batch < 1 || o.batch > 500 {
		errs = append(errs, "-request-events must be within 1..500 (the gateway's limit)")
	}
	if o.freshFor < time.Second || o.freshRate <= 0 {
		errs = append(errs, "-freshness-duration must be at least 1s and -freshness-rate positive")
	}
	if o.soak < 0 || (o.soak > 0 && (o.soakFraction <= 0 || o.soakSample <= 0 || o.soakSample > o.soak)) {
		errs = append(errs, "-soak must not be negative; with -soak, -soak-rate must be positive and -soak-sample within (0, -soak]")
	}
	if o.ceilingBatch < 1 {
		errs = append(errs, "-ceiling-batch must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// exportRevision writes the tree of git revision rev into a temporary directory and has
// test/stack build the services from there, so the numbers are those of that commit
// whatever the working tree holds. It returns the commit.
func exportRevision(t *benchTB, rev string) string {
	out, err := exec.Command("git", "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		t.Fatalf("git rev-parse %s: %v", rev, err)
	}
	commit := strings.TrimSpace(string(out))
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", "git archive \"$1\" | tar -x -C \"$2\"", "sh", commit, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("export %s: %v\n%s", commit, err, out)
	}
	if err := os.Setenv(stack.SourceEnv, dir); err != nil {
		t.Fatalf("%s: %v", stack.SourceEnv, err)
	}
	return commit
}

// cpuSnapshot is the CPU seconds of every measured process at one moment: the services
// and kinesalite by name, PostgreSQL's processes by pid.
type cpuSnapshot struct {
	procs    map[string]float64
	postgres map[int]float64
}

// procs are the processes the bench measures: the services (once started), kinesalite,
// and PostgreSQL (all of its processes).
type procs struct {
	t    *benchTB
	pids map[string]int
	db   *pgxpool.Pool
}

const (
	kinesaliteName = "kinesalite"
	postgresName   = "postgresql"
	benchName      = "bench" // this process: the load generator
)

func (p *procs) find(name, comm string) {
	pid, err := childPID(comm)
	if err != nil {
		p.t.Fatalf("find %s: %v", name, err)
	}
	p.pids[name] = pid
}

// add measures a process the stack started.
func (p *procs) add(name string, proc *stack.Process) {
	if proc.PID() == 0 {
		p.t.Fatalf("%s has no process id", name)
	}
	p.pids[name] = proc.PID()
}

func (p *procs) snapshot() cpuSnapshot {
	s := cpuSnapshot{procs: map[string]float64{}, postgres: p.postgres()}
	for name, pid := range p.pids {
		st, err := readProcStat(pid)
		if err != nil {
			p.t.Fatalf("%s: %v", name, err)
		}
		s.procs[name] = st.CPU
	}
	return s
}

// postgres reads the CPU of the PostgreSQL processes that work for this run: the backends
// connected to its database and the server's own processes (WAL writer, checkpointer,
// autovacuum, ...), which serve it too. Other databases' backends are left out: the server
// is shared with whatever else runs on the machine. A backend that exits between two
// snapshots takes its CPU with it, which the services' long-lived pools make rare.
func (p *procs) postgres() map[int]float64 {
	rows, err := p.db.Query(p.t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() OR backend_type <> 'client backend'`)
	if err != nil {
		p.t.Fatalf("PostgreSQL processes: %v", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		p.t.Fatalf("PostgreSQL processes: %v", err)
	}
	out := map[int]float64{}
	for _, pid := range pids {
		if st, err := readProcStat(int(pid)); err == nil {
			out[int(pid)] = st.CPU
		}
	}
	return out
}

func run(t *benchTB, o options) *report {
	ctx := t.Context()
	rep := newReport(o)
	if o.rev != "" {
		rep.Commit = exportRevision(t, o.rev)
	}
	t.Logf("building the services (%s)", map[bool]string{true: "-race", false: "release"}[o.race])
	kl := kinesalitetest.Start(t)
	keysFile, keys, err := producerKeys(t.TempDir(), o.httpProd+o.grpcProd)
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Release builds (unless -race) and every service's own defaults: the bench measures
	// what users run, not the tests' settings.
	env := map[string][]string{stack.Gateway: {"--api-keys-file", keysFile}}
	if o.profile != "" {
		for _, s := range soakProfiled {
			env[s] = append(env[s], "--pprof")
		}
	}
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: o.shards, Kinesalite: kl,
		Config: stack.Config{Env: env, Release: !o.race, DefaultFlags: true}})
	rep.Stream = p.Stream

	pr := &procs{t: t, pids: map[string]int{}, db: p.DB}
	pr.find(kinesaliteName, "node")
	// The load generator (this process: the producers, and the bench's own polling of
	// the warehouse) shares the machine: its CPU is measured as the others' are.
	pr.pids[benchName] = os.Getpid()
	pr.add(stack.Loader, p.Start(stack.Loader))
	p.WaitSchema()
	pr.add(stack.Transformer, p.Start(stack.Transformer))
	pr.add(stack.Gateway, p.Start(stack.Gateway))
	prod, err := newProducers(p.GatewayURL(), p.Ports(stack.Gateway).GRPCAddr(), keys, o.httpProd, o.grpcProd)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer prod.close()
	w := rows{p: p}

	// 1. The gateway alone: the backlog goes into the stream, nobody reads it.
	t.Logf("phase 1: %d events into the gateway, no consumer running", o.events)
	drainW := workload{phase: "drain", players: o.players, seed: o.seed, phaseNo: 1}
	drainReqs := renderPhase(t, drainW, o.events, o.batch)
	s0 := pr.snapshot()
	gw, err := prod.flood(ctx, drainReqs)
	if err != nil {
		t.Fatalf("phase 1: %v", err)
	}
	s1 := pr.snapshot()
	rep.Gateway, rep.GatewayRetries = gw.rate(), gw.Retries
	rep.addCPU("gateway load (no consumer)", o.events, s0, s1)

	// 2. The backlog drain: from the consumer's start to the last row's commit.
	t.Logf("phase 2: the consumer drains %d events", o.events)
	drainStart := time.Now()
	pr.add(stack.Consumer, p.Start(stack.Consumer))
	var prof *profiler
	if o.profile != "" {
		if prof, err = newProfiler(o.profile, p); err != nil {
			t.Fatalf("%v", err)
		}
		prof.drain(ctx, 8*time.Second, 2*time.Second, 4*time.Second, 6*time.Second)
	}
	drainEnd := w.wait(ctx, "drain", o.events)
	s2 := pr.snapshot()
	rep.Drain = float64(o.events) / drainEnd.Sub(drainStart).Seconds()
	rep.DrainSeconds = drainEnd.Sub(drainStart).Seconds()
	rep.addCPU("backlog drain", o.events, s1, s2)
	if prof != nil {
		if err := prof.wait(); err != nil {
			t.Errorf("%v", err)
		}
		t.Logf("drain profiles in %s", o.profile)
	}

	// 3. End to end while loading.
	e2eEvents := o.events / 2
	t.Logf("phase 3: %d events end to end, the pipeline running", e2eEvents)
	e2eW := workload{phase: "e2e", players: o.players, seed: o.seed, phaseNo: 2}
	e2eReqs := renderPhase(t, e2eW, e2eEvents, o.batch)
	s2 = pr.snapshot() // the rendering is not the phase's
	e2e, err := prod.flood(ctx, e2eReqs)
	if err != nil {
		t.Fatalf("phase 3: %v", err)
	}
	e2eEnd := w.wait(ctx, "e2e", e2eEvents)
	s3 := pr.snapshot()
	rep.GatewayWhileLoading, rep.GatewayWhileLoadingRetries = e2e.rate(), e2e.Retries
	rep.EndToEnd = float64(e2eEvents) / e2eEnd.Sub(e2e.First).Seconds()
	rep.addCPU("end to end while loading", e2eEvents, s2, s3)

	// 4. Freshness at a fixed rate and at 80% of the end-to-end rate.
	for i, rate := range []float64{o.freshRate, 0.8 * rep.EndToEnd} {
		phase := fmt.Sprintf("fresh%d", i+1)
		t.Logf("phase 4.%d: %.0f events/s for %s", i+1, rate, o.freshFor)
		fw := workload{phase: phase, players: o.players, seed: o.seed, phaseNo: uint64(3 + i)}
		before := pr.snapshot()
		res, err := prod.paced(ctx, fw, rate, o.freshFor)
		if err != nil {
			t.Fatalf("phase 4.%d: %v", i+1, err)
		}
		w.wait(ctx, phase, res.Events)
		f := w.freshness(ctx, phase)
		f.AskedRate, f.SentRate = rate, res.rate()
		rep.Freshness = append(rep.Freshness, f)
		rep.addCPU(fmt.Sprintf("steady %.0f events/s", rate), res.Events, before, pr.snapshot())
	}
	if n := p.Count("SELECT count(*) FROM boxscore.dead_letter"); n != 0 {
		t.Errorf("%d dead letters: every bench event is valid", n)
	}
	rep.memory(pr)

	// 4b. The soak: memory over a long steady load (-soak), after the peaks are read.
	if o.soak > 0 {
		rate := o.soakFraction * rep.EndToEnd
		t.Logf("soak: %.0f events/s for %s, RSS sampled every %s", rate, o.soak, o.soakSample)
		if prof != nil {
			prof.soak(ctx, o.soak)
		}
		before := pr.snapshot()
		res, err := soak(ctx, pr, prod, w, o, rate)
		if err != nil {
			t.Fatalf("soak: %v", err)
		}
		if prof != nil {
			if err := prof.wait(); err != nil {
				t.Errorf("%v", err)
			}
			t.Logf("soak heap profiles in %s", o.profile)
		}
		rep.Soak = &res
		rep.addCPU(fmt.Sprintf("soak %.0f events/s", rate), res.Events, before, pr.snapshot())
	}

	// 5. The ceilings, with the pipeline idle.
	t.Logf("phase 5: ceilings")
	rep.ceilings(ctx, t, p, kl, o)
	return rep
}

// renderPhase renders a flooding phase's requests before it starts (see request).
func renderPhase(t *benchTB, w workload, n, batch int) []*request {
	start := time.Now()
	reqs, err := render(w, n, batch)
	if err != nil {
		t.Fatalf("render the %s requests: %v", w.phase, err)
	}
	t.Logf("%d %s requests rendered in %s", len(reqs), w.phase, time.Since(start).Round(time.Millisecond))
	return reqs
}

// rows watches the warehouse.
type rows struct{ p *stack.Pipeline }

// wait returns once the warehouse holds n rows of phase, and then the time of the last
// one's commit: the largest loaded_at (now() of the loading transaction, a few ms before
// its commit). Counting is polled every 500 ms, so as not to load PostgreSQL with the
// measurement; loaded_at makes the end exact anyway.
func (w rows) wait(ctx context.Context, phase string, n int) time.Time {
	t := w.p.T
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var got int
		var last time.Time
		err := w.p.DB.QueryRow(ctx, `SELECT count(*), coalesce(max(loaded_at), 'epoch') FROM boxscore.fact_batting_game
			WHERE event_id LIKE $1`, phase+"-%").Scan(&got, &last)
		if err != nil {
			t.Fatalf("count the rows of %s: %v", phase, err)
		}
		if got >= n {
			if got > n {
				t.Errorf("%s: %d rows for %d events", phase, got, n)
			}
			return last
		}
		if time.Now().After(deadline) {
			w.p.DumpLogs()
			t.Fatalf("%s: %d of %d rows after 15 minutes", phase, got, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// freshness reads the accepted → committed times of phase's rows.
func (w rows) freshness(ctx context.Context, phase string) freshness {
	f := freshness{Phase: phase}
	err := w.p.DB.QueryRow(ctx, `
		WITH d AS (SELECT extract(epoch FROM loaded_at - accepted_at)::float8 AS s
		           FROM boxscore.fact_batting_game WHERE event_id LIKE $1)
		SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.95) WITHIN GROUP (ORDER BY s),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY s), max(s) FROM d`, phase+"-%").
		Scan(&f.Events, &f.P50, &f.P95, &f.P99, &f.Max)
	if err != nil {
		w.p.T.Fatalf("freshness of %s: %v", phase, err)
	}
	return f
}
