package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// The soak's sizes. make test runs the defaults (a couple of minutes); make chaos runs
// 100,000 events through 200 faults.
var (
	soakEvents   = flag.Int("chaos.events", 3000, "TestChaosSoak: events the producers send at least (probes and bad records not counted)")
	soakFaults   = flag.Int("chaos.faults", 15, "TestChaosSoak: faults injected at least")
	soakDuration = flag.Duration("chaos.duration", 45*time.Second,
		"TestChaosSoak: planned length of the fault phase: producers pace to send chaos.events in it, faults are spread over it (it runs longer when faults take longer)")
	soakSeed     = flag.Uint64("chaos.seed", 0, "TestChaosSoak: seed of the fault schedule and the workload; 0 draws one (printed)")
	soakRecovery = flag.Duration("chaos.recovery-timeout", 3*time.Minute, "TestChaosSoak: how long a fault may leave a shard stalled before the run fails")
	soakKinds    = flag.String("chaos.kinds", "", "TestChaosSoak: comma-separated prefixes of the fault kinds to draw from (e.g. expired/,net/postgres/); empty: every kind")
	soakReport   = flag.String("chaos.report", "", "TestChaosSoak: also write the report (markdown) to this file")
)

// TestChaosSoak: producers send events without pause while faults of every kind are drawn at
// random and injected one after another — every service SIGKILLed, two at once, PostgreSQL
// crashed in immediate mode, kinesalite killed, latency, drops, half-open connections,
// resets and a dead proxy on each network link, a consumer frozen beyond its lease, the
// lease store emptied, bad records written straight to the stream. After each fault a probe
// event per shard measures how long until every shard flows again. At the end the ledger:
// every accepted event exactly once with its greatest version, every bad record (impossible
// line or crafted record) exactly one dead letter, nothing else; and the report: events,
// faults by kind, lost, duplicated, dead letters, recovery p50/p99/max overall and per kind.
func TestChaosSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos soak: seed %d (-chaos.seed=%d repeats the schedule), at least %d events and %d faults over %s",
		seed, seed, *soakEvents, *soakFaults, *soakDuration)
	e := newEngine(t, seed)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); e.watchKinesalite(watchCtx) }()
	defer func() { stopWatch(); <-watched }()
	stop := make(chan struct{})
	rate := float64(*soakEvents) / soakDuration.Seconds() * 1.1
	producing := e.producersRunning(ctx, rate, stop)
	began := time.Now()
	stopProducers := func() error {
		select {
		case <-stop:
		default:
			close(stop)
		}
		return <-producing
	}

	// The first events in before the first fault: faults hit a pipeline at work.
	for first := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if n, err := rowsLoadedSince(e.p, time.Time{}); err == nil && n > 0 {
			break
		}
		if time.Since(first) > 90*time.Second {
			posts, retries := e.led.Posts()
			e.p.DumpLogs()
			t.Logf("--- ingest-gateway log ---\n%s", e.p.LogTail(stack.Gateway, 30))
			t.Fatalf("no row in the warehouse 90s after the start (%d POSTs, %d retries, %d events accepted: %q)",
				posts, retries, e.led.AcceptedCount(), e.led.Why())
		}
	}

	// Bad records from the start, whichever faults the schedule draws: every run checks
	// that each is exactly one dead letter.
	if _, _, detail, err := e.apply(kindCrafted); err != nil {
		t.Fatalf("crafted records: %v", err)
	} else {
		t.Logf("crafted records written straight to the stream: %s", detail)
	}

	slot := *soakDuration / time.Duration(*soakFaults)
	var fatal error
	for i := 0; fatal == nil && (i < *soakFaults || e.produced() < *soakEvents); i++ {
		// Spread the faults over the planned duration; when behind, go on at once.
		if wait := time.Until(began.Add(time.Duration(i) * slot)); wait > 0 {
			time.Sleep(wait)
		}
		time.Sleep(e.between(100*time.Millisecond, 600*time.Millisecond))
		select {
		case err := <-producing:
			fatal = fmt.Errorf("the producers stopped before the faults did: %w", err)
			producing = closedWith(err)
			continue
		default:
		}
		if err := e.waitAllReady(90 * time.Second); err != nil {
			fatal = err
			break
		}
		kind := e.next()
		before := e.produced()
		start, end, detail, err := e.apply(kind)
		r := result{kind: kind, detail: detail, start: start, end: end, err: err}
		if err == nil {
			r.recovery, r.err = e.probe(i, end, *soakRecovery)
		}
		e.bringBack()
		r.overlapped = e.produced() > before
		e.results = append(e.results, r)
		if r.err != nil {
			fatal = fmt.Errorf("fault %d %s (%s): %w", i, kind, detail, r.err)
			break
		}
		t.Logf("fault %3d %s %-28s %-36s recovered in %6.2fs", i, start.UTC().Format("15:04:05.000"), kind, detail, r.recovery.Seconds())
	}
	faultPhase := time.Since(began)
	if fatal != nil {
		t.Logf("stopping: %v", fatal)
		cancel()
		select {
		case <-stop:
		default:
			close(stop)
		}
		select {
		case err := <-producing:
			if err != nil {
				t.Logf("producers: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Log("the producers did not stop within 30s")
		}
		e.p.DumpLogs()
		t.Log(e.health())
		t.Log(e.report(nil, faultPhase))
		t.Fatal(fatal)
	}
	if err := stopProducers(); err != nil {
		t.Fatalf("producers: %v", err)
	}
	// Settled when every shard's checkpoint is at or past the last event the gateway
	// acknowledged and the last crafted record in it. (Not Pipeline.Settle: it reads the
	// stream from its trim horizon, and after records expired kinesalite answers that first
	// read with an empty page, which reads as an empty stream.)
	ends := e.led.Acked()
	for _, c := range e.crafted {
		if compareSequence(c.Sequence, ends[c.Shard]) > 0 {
			ends[c.Shard] = c.Sequence
		}
	}
	if err := e.caughtUp(ends, 5*time.Minute); err != nil {
		e.p.DumpLogs()
		t.Log(e.report(nil, faultPhase))
		t.Fatalf("after the faults: %v", err)
	}
	v := e.verdict()
	report := e.report(&v, faultPhase)
	t.Log(report)
	if *soakReport != "" {
		if err := os.WriteFile(*soakReport, []byte(report), 0o644); err != nil {
			t.Errorf("write the report: %v", err)
		}
	}
	v.assert(t)
	e.p.AssertEveryShardUsed(e.led)
	overlapped := 0
	for _, r := range e.results {
		if r.overlapped {
			overlapped++
		}
	}
	// Producers ran throughout; a fault none of whose recovery saw a producer's event
	// accepted is possible (a gateway-side fault with long Retry-After), most is not.
	if overlapped*2 < len(e.results) {
		t.Errorf("only %d of %d faults overlapped the producers' traffic", overlapped, len(e.results))
	}
}

func closedWith(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

// verdict is the ledger's account of the warehouse and the dead letters.
type verdict struct {
	accepted, refused int // distinct events
	rows              int
	// lost: accepted (player, game) keys without a row, and bad records without a dead letter.
	lostRows, lostDead int
	// duplicated: dead letters beyond one per bad record, rows of events never accepted
	// (refused or never sent), and rows holding another version than the greatest accepted.
	dupDead, unexpectedRows, wrongVersion, strayDead int
	impossible, crafted                              int // bad records expected as dead letters
	deadLetters                                      int
	// gaps are the stream_gap rows by reason: ranges the consumers report not read (after
	// records expired under their checkpoints). Reported, not judged: the ledger judges.
	gaps     map[string]int
	problems []string
}

func (v *verdict) problem(format string, args ...any) {
	if len(v.problems) < 30 {
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	}
}

// verdict checks the warehouse against the ledger as AssertExactlyOnce does, and the dead
// letters against the bad records: each impossible line (by event id, stage validate) and
// each crafted record (by shard and sequence number) exactly one dead letter, no other.
func (e *engine) verdict() verdict {
	var v verdict
	want := map[string]stack.Line{}
	impossible := map[string]bool{}
	for _, l := range e.led.Accepted() {
		if l.Impossible {
			impossible[l.EventID] = true
			continue
		}
		cur, ok := want[l.Key()]
		if !ok || l.Version > cur.Version || (l.Version == cur.Version && l.EventID > cur.EventID) {
			want[l.Key()] = l
		}
	}
	refused := e.led.Refused()
	v.accepted, v.refused = e.led.AcceptedCount(), len(refused)
	rows := e.p.Rows()
	v.rows = len(rows)
	seen := map[string]bool{}
	for _, r := range rows {
		k := r.Key()
		seen[k] = true
		w, ok := want[k]
		switch {
		case !ok:
			v.unexpectedRows++
			_, isRefused := refused[r.EventID]
			v.problem("row %s from event %s, never accepted (refused: %t)", k, r.EventID, isRefused)
		case r.Line != w || r.Singles != w.Singles() || r.TotalBases != w.TotalBases():
			v.wrongVersion++
			v.problem("row %s holds event %s version %d, want %s version %d", k, r.EventID, r.Version, w.EventID, w.Version)
		}
	}
	for k, w := range want {
		if !seen[k] {
			v.lostRows++
			v.problem("accepted event %s (%s) is not in the warehouse; %s", w.EventID, k, e.inStream(w.EventID))
		}
	}

	type pos struct{ shard, seq string }
	craftedAt := map[pos]string{}
	for _, c := range e.crafted {
		craftedAt[pos{c.Shard, c.Sequence}] = c.Name
	}
	v.impossible, v.crafted = len(impossible), len(craftedAt)
	got := map[string]int{}
	for _, d := range e.p.DeadLetters() {
		v.deadLetters++
		switch {
		case impossible[d.EventID]:
			got["id:"+d.EventID]++
			if d.Stage != "validate" || d.Reason == "" || d.Shard == "" || d.Sequence == "" || len(d.Payload) == 0 {
				v.problem("dead letter %s: stage %q reason %q at %q/%q, %d bytes", d.EventID, d.Stage, d.Reason, d.Shard, d.Sequence, len(d.Payload))
			}
		case craftedAt[pos{d.Shard, d.Sequence}] != "":
			got[fmt.Sprintf("at:%s/%s", d.Shard, d.Sequence)]++
		default:
			v.strayDead++
			v.problem("dead letter for no bad record: %.80q stage %s reason %s at %s/%s", d.EventID, d.Stage, d.Reason, d.Shard, d.Sequence)
		}
	}
	count := func(key, what string) {
		switch n := got[key]; {
		case n == 0:
			v.lostDead++
			v.problem("%s has no dead letter", what)
		case n > 1:
			v.dupDead += n - 1
			v.problem("%s has %d dead letters", what, n)
		}
	}
	for id := range impossible {
		count("id:"+id, "impossible line "+id)
	}
	for at, name := range craftedAt {
		count(fmt.Sprintf("at:%s/%s", at.shard, at.seq), fmt.Sprintf("crafted record %q at %s/%s", name, at.shard, at.seq))
	}
	v.gaps = map[string]int{}
	rows2, err := e.p.DB.Query(context.Background(), "SELECT reason, count(*) FROM boxscore.stream_gap GROUP BY reason")
	if err != nil {
		e.t.Fatalf("read the stream gaps: %v", err)
	}
	defer rows2.Close()
	for rows2.Next() {
		var reason string
		var n int
		if err := rows2.Scan(&reason, &n); err != nil {
			e.t.Fatal(err)
		}
		v.gaps[reason] = n
	}
	if err := rows2.Err(); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// inStream says, for a lost event, where the gateway said it wrote it and what kinesalite
// (asked directly) holds there now: whether the loss is the stream's or the pipeline's.
func (e *engine) inStream(eventID string) string {
	at, ok := e.led.At(eventID)
	if !ok {
		return "no position recorded"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it, err := e.direct.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(e.p.Stream),
		ShardId: aws.String(at.Shard), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(at.Sequence)})
	if err != nil {
		return fmt.Sprintf("written at %s/%s; iterator there: %v", at.Shard, at.Sequence, err)
	}
	out, err := e.direct.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
	if err != nil {
		return fmt.Sprintf("written at %s/%s; read there: %v", at.Shard, at.Sequence, err)
	}
	if len(out.Records) == 0 {
		return fmt.Sprintf("written at %s/%s; the stream serves nothing there (expired or lost)", at.Shard, at.Sequence)
	}
	rec := out.Records[0]
	env, _, err := statevent.DecodeEnvelope(rec.Data)
	id := "undecodable: " + fmt.Sprint(err)
	if err == nil {
		id = env.GetEventId()
	}
	return fmt.Sprintf("written at %s/%s; the stream holds there %s (event %s)", at.Shard, at.Sequence, aws.ToString(rec.SequenceNumber), id)
}

func (v verdict) lost() int { return v.lostRows + v.lostDead }

func (v verdict) duplicated() int { return v.dupDead + v.unexpectedRows + v.wrongVersion + v.strayDead }

func (v verdict) assert(t *testing.T) {
	t.Helper()
	for _, p := range v.problems {
		t.Error(p)
	}
	if v.lost() != 0 || v.duplicated() != 0 {
		t.Errorf("ledger: %d lost, %d duplicated (see above)", v.lost(), v.duplicated())
	}
	// Impossible lines reach the stream only as crafted records now (the gateway refuses
	// them with 422): each round of crafted records holds one.
	if v.crafted == 0 {
		t.Errorf("the run wrote no crafted records: it does not test dead letters")
	}
}

// report renders the run: sizes, the ledger's verdict (nil when the run stopped early) and
// recovery per kind, in markdown.
func (e *engine) report(v *verdict, faultPhase time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Chaos soak: %d faults in %s\n\n", len(e.results), faultPhase.Round(time.Second))
	fmt.Fprintf(&b, "- events: %d sent by the producers and accepted, %d probes; %d refused whole\n",
		e.produced(), e.probes.Load(), len(e.led.Refused()))
	posts, retries := e.led.Posts()
	fmt.Fprintf(&b, "- POSTs: %d, of which %d retries\n", posts, retries)
	if v != nil {
		fmt.Fprintf(&b, "- lost: %d (accepted events without a row: %d; bad records without a dead letter: %d)\n", v.lost(), v.lostRows, v.lostDead)
		fmt.Fprintf(&b, "- duplicated: %d (extra dead letters: %d; rows of events never accepted: %d; rows not of the greatest version: %d; dead letters of no bad record: %d)\n",
			v.duplicated(), v.dupDead, v.unexpectedRows, v.wrongVersion, v.strayDead)
		fmt.Fprintf(&b, "- dead letters: %d for %d bad records (%d impossible lines, %d crafted records)\n",
			v.deadLetters, v.impossible+v.crafted, v.impossible, v.crafted)
		fmt.Fprintf(&b, "- warehouse rows: %d; stream gaps recorded: %v\n", v.rows, v.gaps)
	}
	overlapped := 0
	byKind := map[string][]time.Duration{}
	var all []time.Duration
	for _, r := range e.results {
		if r.overlapped {
			overlapped++
		}
		if r.err == nil {
			byKind[r.kind] = append(byKind[r.kind], r.recovery)
			all = append(all, r.recovery)
		}
	}
	fmt.Fprintf(&b, "- faults overlapping the producers' traffic: %d of %d\n", overlapped, len(e.results))
	e.kinMu.Lock()
	deaths := slices.Clone(e.deaths)
	e.kinMu.Unlock()
	fmt.Fprintf(&b, "- kinesalite deaths nobody asked for (restarted by the soak): %d %q\n\n", len(deaths), deaths)
	fmt.Fprintf(&b, "Seconds from a fault's end (a kill: its moment) until a probe per shard sent then was in the warehouse:\n\n")
	fmt.Fprintf(&b, "| fault | n | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, s stats) {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.1f |\n", name, s.n, s.p50.Seconds(), s.p99.Seconds(), s.max.Seconds())
	}
	row("**all**", statsOf(all))
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		row(k, statsOf(byKind[k]))
	}
	var failed []string
	for _, r := range e.results {
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s): %v", r.kind, r.detail, r.err))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "\nNot recovered: %s\n", strings.Join(failed, "; "))
	}
	return b.String()
}
