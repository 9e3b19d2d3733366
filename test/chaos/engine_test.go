package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// The chaos engine: a stack whose every network link runs through a fault proxy, producers
// sending without pause from the first fault to the last, and a schedule of faults drawn at
// random from every kind. After each fault it measures how long until every shard flows
// again: a probe event per shard, sent through the gateway right after the fault ended,
// found in the warehouse.

// Links are the proxied network paths, named by what they lead to: PostgreSQL (the loader's
// warehouse and the consumer's leases), Kinesis (the gateway's puts and the consumer's
// reads), and the consumer's calls to the transformer and to the loader.
var links = []string{"postgres", "kinesis", "transformer", "loader"}

// Fault kinds. Network kinds are "net/<link>/<fault>".
const (
	kindKillTwo    = "kill-two"        // two services SIGKILLed at once
	kindPGCrash    = "postgres-crash"  // PostgreSQL stopped in immediate mode, started again
	kindKinesalite = "kinesalite-kill" // kinesalite SIGKILLed, started again on its data
	kindPause      = "consumer-pause"  // a consumer replica SIGSTOPped beyond its lease time
	// A consumer replica SIGKILLed and kept down until every shard flows again: a pod lost
	// with its node. Its leases are not renewed, so the other replica must take its shards
	// over on lease expiry; recovery is counted from the kill. It comes back (a new pod)
	// after the probe.
	kindConsumerLost = "consumer-lost"
	kindLeaseReset   = "lease-reset"     // every lease row deleted
	kindCrafted      = "crafted-records" // bad records written straight to the stream
	// kinesalite's clock moved past the iterators' 5-minute life, under traffic: every
	// iterator the consumers hold expires, no record does.
	kindIterators = "expired/iterators"
	// kinesalite's clock moved past the stream's 24-hour retention: every record written so
	// far expires. The producers are held at a gate and the consumers let catch up first,
	// so that what expires was read: the stream trims under the consumers' checkpoints
	// (each checkpoint's own record gone) and the ledger must still come out exact.
	kindRecords      = "expired/records"
	killPrefix       = "kill/"
	netPrefix        = "net/"
	consumerReplicas = 2 // consumer replicas: a paused or lost one's shards are taken over
	// The consumer's default --lease-failover-time, which the soak runs with: the time after
	// which a replica takes over the leases of one that stopped renewing them.
	leaseFailover = 6 * time.Second
)

// faultKinds lists every kind of fault the engine draws from.
func faultKinds() []string {
	var kinds []string
	for _, s := range stack.Services {
		kinds = append(kinds, killPrefix+s)
	}
	kinds = append(kinds, kindKillTwo, kindPGCrash, kindKinesalite, kindPause, kindLeaseReset, kindCrafted, kindIterators, kindRecords, kindConsumerLost)
	for _, l := range links {
		for _, f := range stack.NetFaults {
			kinds = append(kinds, netPrefix+l+"/"+string(f))
		}
	}
	return kinds
}

// engine holds the stack under chaos and what happened to it.
type engine struct {
	t       *testing.T
	p       *stack.Pipeline
	pg      *pgtest.Server
	kin     *kinesalitetest.Process
	direct  *kinesis.Client // kinesalite itself, not through the proxy
	proxies map[string]*stack.Proxy
	led     *stack.Ledger
	rng     *rand.Rand
	gate    *gate // the producers' way to the gateway

	// kinMu is held while a fault stops kinesalite on purpose, so that the watch does
	// not take that for a death.
	kinMu  sync.Mutex
	deaths []string // kinesalite exits nobody asked for, with what it said

	probePlayers []int64 // one per shard
	probes       atomic.Int64
	crafted      []stack.Crafted
	deck         []string
	results      []result
	held         string // a replica kept down by the current fault, started again after its probe
}

// result is one fault and the recovery after it.
type result struct {
	kind, detail string
	start, end   time.Time     // the fault in force (a kill: one moment)
	recovery     time.Duration // from end until every shard's probe was in the warehouse
	overlapped   bool          // producers' events were accepted between start and recovery
	err          error
}

// newEngine starts kinesalite and PostgreSQL of the test's own, the proxies in front of them
// and of the transformer and loader, and the supervised stack (two consumer replicas) on them.
// The pipeline's DB and Kinesis client are pointed past the proxies: the test's own checks
// are never disturbed by the faults it injects.
func newEngine(t *testing.T, seed uint64) *engine {
	kin := kinesalitetest.Launch(t, kinesalitetest.Options{DataDir: t.TempDir(), ClockControl: true})
	pg := pgtest.StartServer(t)
	dbURL := pg.CreateDatabase(t, "warehouse")
	streamName := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, streamName, 4)

	ps := stack.NewProxies(t)
	pgAddr, err := stack.HostPort(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	kinAddr, err := stack.HostPort(kin.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	trPort, ldPort := stack.FreePort(t), stack.FreePort(t)
	proxies := map[string]*stack.Proxy{
		"postgres":    ps.Add("postgres", pgAddr),
		"kinesis":     ps.Add("kinesis", kinAddr),
		"transformer": ps.Add("transformer", fmt.Sprintf("127.0.0.1:%d", trPort)),
		"loader":      ps.Add("loader", fmt.Sprintf("127.0.0.1:%d", ldPort)),
	}
	proxiedDB, err := stack.ProxiedDatabaseURL(dbURL, proxies["postgres"])
	if err != nil {
		t.Fatal(err)
	}
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 4,
		Kinesalite: &kinesalitetest.Server{Endpoint: "http://" + proxies["kinesis"].Addr()},
		Config: stack.Config{Stream: streamName, DatabaseURL: proxiedDB,
			Env:               map[string][]string{stack.Gateway: gatewayFlags},
			Listen:            map[string]stack.Listen{stack.Transformer: {GRPCPort: trPort}, stack.Loader: {GRPCPort: ldPort}},
			TransformerTarget: proxies["transformer"].Addr(), LoaderTarget: proxies["loader"].Addr()}})
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p.DB, p.Kinesis = pool, kin.Client(t)

	supervised(p)
	p.Supervise(p.StartReplica(stack.Consumer, consumerReplicas))
	return &engine{t: t, p: p, pg: pg, kin: kin, direct: kin.Client(t), proxies: proxies, led: stack.NewLedger(),
		rng: rand.New(rand.NewPCG(seed, 11)), gate: newGate(t, p.GatewayURL()),
		probePlayers: stack.PlayersOverShards(t, p.Kinesis, streamName, 800000, 1)}
}

// next draws the next fault kind: every kind once in a random order, then again in another,
// so that even a short run covers many kinds and a long one covers each about equally.
func (e *engine) next() string {
	if len(e.deck) == 0 {
		for _, k := range faultKinds() {
			if *soakKinds == "" || slices.ContainsFunc(strings.Split(*soakKinds, ","), func(p string) bool { return strings.HasPrefix(k, p) }) {
				e.deck = append(e.deck, k)
			}
		}
		if len(e.deck) == 0 {
			e.t.Fatalf("no fault kind matches -chaos.kinds=%s", *soakKinds)
		}
		e.rng.Shuffle(len(e.deck), func(i, j int) { e.deck[i], e.deck[j] = e.deck[j], e.deck[i] })
	}
	k := e.deck[0]
	e.deck = e.deck[1:]
	return k
}

// between returns a random duration in [lo, hi).
func (e *engine) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(e.rng.Int64N(int64(hi-lo)))
}

// consumerInstance picks one consumer replica.
func (e *engine) consumerInstance() string {
	return stack.InstanceName(stack.Consumer, 1+e.rng.IntN(consumerReplicas))
}

// instance picks the instance of a service to hit.
func (e *engine) instance(service string) string {
	if service == stack.Consumer {
		return e.consumerInstance()
	}
	return service
}

// apply injects one fault and lifts it; end is when the fault was over (a kill: the moment
// of the kill). detail says what exactly was done.
func (e *engine) apply(kind string) (start, end time.Time, detail string, err error) {
	t := e.t
	start = time.Now()
	switch {
	case strings.HasPrefix(kind, killPrefix):
		name := e.instance(strings.TrimPrefix(kind, killPrefix))
		e.p.Kill(name)
		return start, start, name, nil

	case kind == kindKillTwo:
		names := []string{stack.Loader, stack.Transformer, stack.Gateway, stack.InstanceName(stack.Consumer, 1), stack.InstanceName(stack.Consumer, 2)}
		e.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		names = names[:2]
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Go(func() { e.p.Kill(n) })
		}
		wg.Wait()
		return start, start, strings.Join(names, "+"), nil

	case kind == kindPGCrash:
		down := e.between(500*time.Millisecond, 3*time.Second)
		e.pg.Kill(t)
		time.Sleep(down)
		e.pg.Start(t)
		return start, time.Now(), fmt.Sprintf("down %s", down.Round(time.Millisecond)), nil

	case kind == kindKinesalite:
		e.kinMu.Lock()
		defer e.kinMu.Unlock()
		down := e.between(500*time.Millisecond, 2*time.Second)
		e.kin.Kill(t)
		time.Sleep(down)
		e.kin.Start(t)
		return start, time.Now(), fmt.Sprintf("down %s", down.Round(time.Millisecond)), nil

	case kind == kindPause:
		name := e.consumerInstance()
		d := leaseFailover + e.between(time.Second, 3*time.Second)
		e.p.Pause(name)
		time.Sleep(d)
		e.p.Resume(name)
		return start, time.Now(), fmt.Sprintf("%s for %s", name, d.Round(time.Millisecond)), nil

	case kind == kindConsumerLost:
		name := e.consumerInstance()
		e.p.KillAndHold(name)
		e.held = name
		return start, start, name + " down until every shard flows", nil

	case kind == kindLeaseReset:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tag, err := e.p.DB.Exec(ctx, `DELETE FROM boxscore_lease.shard_lease WHERE stream = $1`, e.p.Stream)
		if err != nil {
			return start, time.Now(), "", fmt.Errorf("delete the lease rows: %w", err)
		}
		return start, time.Now(), fmt.Sprintf("%d lease rows deleted", tag.RowsAffected()), nil

	case kind == kindCrafted:
		round := len(e.crafted)/8 + 1
		recs := stack.CraftedRecords(t, e.rng, e.probePlayers, round)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stack.PutCrafted(ctx, e.direct, e.p.Stream, recs); err != nil {
			return start, time.Now(), "", err
		}
		e.crafted = append(e.crafted, recs...)
		return start, time.Now(), fmt.Sprintf("round %d: %d records", round, len(recs)), nil

	case kind == kindIterators:
		d := 5*time.Minute + e.between(10*time.Second, time.Minute)
		e.kin.AdvanceClock(t, d)
		return start, time.Now(), fmt.Sprintf("clock +%s", d.Round(time.Second)), nil

	case kind == kindRecords:
		e.gate.close()
		defer e.gate.open()
		// Where each shard ends now, read from kinesalite itself rather than from the
		// ledger: a producer records its 202 after the gate has let the answer through, so
		// the ledger may not yet hold the last requests' positions, and an event written
		// but left unread would expire with the rest (a loss the test itself caused).
		acked, err := e.streamEnds(e.led.Acked())
		if err != nil {
			return start, time.Now(), "", err
		}
		if err := e.caughtUp(acked, 2*time.Minute); err != nil {
			return start, time.Now(), "", err
		}
		start = time.Now() // the fault is the expiry, not the catching up
		d := 25 * time.Hour
		e.kin.AdvanceClock(t, d)
		// The fault does what it claims: no shard still serves a record written before.
		if err := e.expired(acked); err != nil {
			return start, time.Now(), "", err
		}
		return start, time.Now(), fmt.Sprintf("clock +%s after the consumers caught up", d), nil

	case strings.HasPrefix(kind, netPrefix):
		link, fault, _ := strings.Cut(strings.TrimPrefix(kind, netPrefix), "/")
		px := e.proxies[link]
		d := e.between(time.Second, 4*time.Second)
		param := e.between(100*time.Millisecond, time.Second) // latency, or the drop's close timeout
		if err := px.Inject(stack.NetFault(fault), param); err != nil {
			return start, time.Now(), "", err
		}
		time.Sleep(d)
		if err := px.Heal(); err != nil {
			return start, time.Now(), "", err
		}
		detail := fmt.Sprintf("for %s", d.Round(time.Millisecond))
		if stack.NetFault(fault) == stack.Latency || stack.NetFault(fault) == stack.Drop {
			detail += fmt.Sprintf(", %s", param.Round(time.Millisecond))
		}
		return start, time.Now(), detail, nil
	}
	return start, time.Now(), "", fmt.Errorf("no fault kind %q", kind)
}

// bringBack starts the replica the last fault kept down, if any, and waits until it is
// ready: the replacement of a lost pod.
func (e *engine) bringBack() {
	if e.held == "" {
		return
	}
	e.p.Start(e.held)
	e.held = ""
}

// probe sends one new event per shard through the gateway (retried until accepted) and
// waits until all are in the warehouse; it returns how long after since that was.
func (e *engine) probe(n int, since time.Time, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	game := fmt.Sprintf("PROBE-%05d", n)
	rng := rand.New(rand.NewPCG(uint64(n), 13))
	var lines []stack.Line
	for _, player := range e.probePlayers {
		lines = append(lines, stack.RandomLine(rng, "probe", player, game, "2024-09-28", 1))
	}
	e.probes.Add(int64(len(lines)))
	// A stall says early what it looks like, while it lasts.
	watchdog := time.AfterFunc(30*time.Second, func() { e.t.Logf("probe %s not through after 30s; %s", game, e.health()) })
	defer watchdog.Stop()
	if _, err := stack.NewProducer(e.p.GatewayURL(), e.led).Deliver(ctx, lines, stack.PostOptions{}); err != nil {
		return 0, fmt.Errorf("probe %s not accepted: %w", game, err)
	}
	for ctx.Err() == nil {
		var found int
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		err := e.p.DB.QueryRow(qctx, "SELECT count(*) FROM boxscore.fact_batting_game WHERE game_id = $1", game).Scan(&found)
		qcancel()
		if err == nil && found == len(lines) {
			return time.Since(since), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("probe %s: not every shard's event in the warehouse within %s of the fault's end", game, timeout)
}

// caughtUp waits until every shard's checkpoint is at or past the sequence number in acked.
func (e *engine) caughtUp(acked map[string]string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cps, err := e.p.Checkpoints(ctx)
		cancel()
		behind := 0
		for shard, seq := range acked {
			if err != nil || compareSequence(cps[shard].Sequence, seq) < 0 {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("read the checkpoints: %w", err)
			}
			return fmt.Errorf("%d shards' checkpoints not at the last acknowledged events within %s", behind, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expired checks that every shard's oldest record comes after the sequence number in acked
// (or that the shard is empty): what was written up to there is gone.
// streamEnds returns every shard's last sequence number, read from kinesalite past the
// proxies, each shard read on from its position in from (from its trim horizon when it has
// none) until it answers nothing more.
func (e *engine) streamEnds(from map[string]string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shards, err := e.direct.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(e.p.Stream)})
	if err != nil {
		return nil, fmt.Errorf("stream ends: %w", err)
	}
	ends := map[string]string{}
	for _, sh := range shards.Shards {
		shard := aws.ToString(sh.ShardId)
		in := &kinesis.GetShardIteratorInput{StreamName: aws.String(e.p.Stream), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
		if seq := from[shard]; seq != "" {
			in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
			ends[shard] = seq
		}
		it, err := e.direct.GetShardIterator(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("stream ends: shard %s: %w", shard, err)
		}
		for next := it.ShardIterator; next != nil; {
			out, err := e.direct.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, fmt.Errorf("stream ends: shard %s: %w", shard, err)
			}
			if n := len(out.Records); n > 0 {
				ends[shard] = aws.ToString(out.Records[n-1].SequenceNumber)
			} else if aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			next = out.NextShardIterator
		}
	}
	return ends, nil
}

func (e *engine) expired(acked map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for shard, seq := range acked {
		it, err := e.direct.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(e.p.Stream),
			ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return fmt.Errorf("expiry check: %w", err)
		}
		out, err := e.direct.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
		if err != nil {
			return fmt.Errorf("expiry check: %w", err)
		}
		if len(out.Records) > 0 && compareSequence(aws.ToString(out.Records[0].SequenceNumber), seq) <= 0 {
			return fmt.Errorf("expiry check: shard %s still serves record %s, at or before %s", shard, aws.ToString(out.Records[0].SequenceNumber), seq)
		}
	}
	return nil
}

// compareSequence orders decimal sequence numbers; "" before any.
func compareSequence(a, b string) int {
	x, okA := new(big.Int).SetString(a, 10)
	y, okB := new(big.Int).SetString(b, 10)
	switch {
	case !okA && !okB:
		return 0
	case !okA:
		return -1
	case !okB:
		return 1
	}
	return x.Cmp(y)
}

// gate is the producers' way to the gateway: a reverse proxy that, once closed, holds new
// requests until it opens again (requests under way finish first). The expiry of records
// needs a moment with nothing unread; nothing else closes it.
type gate struct {
	mu  sync.RWMutex
	url string
}

func newGate(t *testing.T, target string) *gate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a gateway down is a 502 to the producer, who retries: not news
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.RLock()
		defer g.mu.RUnlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *gate) close() { g.mu.Lock() }
func (g *gate) open()  { g.mu.Unlock() }

// watchKinesalite restarts kinesalite (on its port and data) whenever it stops listening
// without a fault having stopped it, until ctx ends, and records each such death. kinesalite
// stands in for Kinesis, which does not go away: twice in full runs the process exited with
// status 1 and nothing on stderr mid-run (see docs/delivery-guarantees.md). A death shows in
// the report and in the recovery of the fault it happened in; the ledger still judges.
func (e *engine) watchKinesalite(ctx context.Context) {
	refusals := 0
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		e.kinMu.Lock()
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := e.direct.DescribeStreamSummary(qctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.p.Stream)})
		cancel()
		if errors.Is(err, syscall.ECONNREFUSED) {
			refusals++
		} else {
			refusals = 0
		}
		if refusals >= 2 && ctx.Err() == nil {
			death := "kinesalite stopped listening: " + tryTB(e.t, func(tb testing.TB) { e.kin.Kill(tb) })
			if msg := tryTB(e.t, func(tb testing.TB) { e.kin.Start(tb) }); msg != "" {
				death += "; restart failed: " + msg
			} else {
				death += "; restarted"
			}
			e.t.Logf("%s %s", time.Now().UTC().Format("15:04:05.000"), death)
			e.deaths = append(e.deaths, death)
			refusals = 0
		}
		e.kinMu.Unlock()
	}
}

// tryTB runs f with a testing.TB whose Fatalf ends f and returns the message instead of
// ending the test: for helpers that only report through t.Fatalf.
func tryTB(t *testing.T, f func(testing.TB)) (msg string) {
	r := &fatalRecorder{TB: t}
	defer func() {
		if x := recover(); x != nil {
			if x != r {
				panic(x)
			}
			msg = r.msg
		}
	}()
	f(r)
	return ""
}

type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

// health says, for a failure's message, whether kinesalite and PostgreSQL answer directly
// (past the proxies), which proxies hold a fault, and which instances are ready.
func (e *engine) health() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var parts []string
	_, err := e.direct.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.p.Stream)})
	parts = append(parts, fmt.Sprintf("kinesalite directly: %v", errOr(err, "answers")))
	_, err = e.p.DB.Exec(ctx, "SELECT 1")
	parts = append(parts, fmt.Sprintf("PostgreSQL directly: %v", errOr(err, "answers")))
	for _, l := range links {
		parts = append(parts, fmt.Sprintf("proxy %s: fault %q", l, e.proxies[l].Fault()))
	}
	for _, name := range e.p.Instances() {
		parts = append(parts, fmt.Sprintf("%s ready: %t", name, e.p.Ready(name)))
	}
	return "health: " + strings.Join(parts, "; ")
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// waitAllReady waits until every instance runs and is ready, so the next fault hits a whole
// stack (a probe can flow while, say, the second consumer replica is still starting).
func (e *engine) waitAllReady(timeout time.Duration) error {
	for _, name := range e.p.Instances() {
		if err := e.p.WaitReady(name, timeout); err != nil {
			return fmt.Errorf("%s not ready: %w", name, err)
		}
	}
	return nil
}

// produced is the number of producers' events accepted so far (probes left out).
func (e *engine) produced() int {
	return e.led.AcceptedCount() - int(e.probes.Load())
}

// producersRunning sends chunk after chunk of workload, paced to rate events per second,
// until stop is closed (the chunk under way is finished). It returns the error that stopped
// it, if any, on done.
func (e *engine) producersRunning(ctx context.Context, rate float64, stop <-chan struct{}) (done <-chan error) {
	out := make(chan error, 1)
	rng := rand.New(rand.NewPCG(e.rng.Uint64(), 17))
	go func() {
		for chunk := 1; ; chunk++ {
			select {
			case <-stop:
				out <- nil
				return
			default:
			}
			if err := e.sendPaced(ctx, chunkWorkload(rng, chunk, 25), rate); err != nil {
				out <- fmt.Errorf("chunk %d: %w", chunk, err)
				return
			}
		}
	}()
	return out
}

// sendPaced sends the workload's batches (and its refused batches among them) at rate
// events per second on the clock, whatever the answers' latency: small batches, often, up
// to 16 in flight, each delivered until accepted or refused (stack.Producer.Deliver), so
// that every fault meets POSTs under way. Behind the clock it catches up by at most a
// second's worth.
func (e *engine) sendPaced(ctx context.Context, w workload, rate float64) error {
	const inFlight = 16
	type post struct {
		lines []stack.Line
		opts  stack.PostOptions
	}
	var posts []post
	refusedAt := map[int][]stack.Line{}
	for k, b := range w.refused {
		refusedAt[(k+1)*len(w.batches)/(len(w.refused)+1)] = b
	}
	for i, b := range w.batches {
		if r, ok := refusedAt[i]; ok {
			posts = append(posts, post{r, malformed})
		}
		posts = append(posts, post{lines: b})
	}
	slots := make(chan struct{}, inFlight)
	errs := make(chan error, len(posts))
	var wg sync.WaitGroup
	next := time.Now()
	for _, p := range posts {
		if now := time.Now(); next.Before(now.Add(-time.Second)) {
			next = now.Add(-time.Second)
		}
		next = next.Add(time.Duration(float64(len(p.lines)) / rate * float64(time.Second)))
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if _, err := stack.NewProducer(e.gate.url, e.led).Deliver(ctx, p.lines, p.opts); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	var err error
	for x := range errs {
		err = errors.Join(err, x)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return err
}

// chunkWorkload is makeWorkload's mix (duplicates, corrections in and out of order,
// refused batches) over 100 players and 5 games (about 550 events: the
// producers stop between chunks), its games and event ids prefixed by the chunk's number so
// that chunks never share a key.
func chunkWorkload(rng *rand.Rand, chunk, batch int) workload {
	w := makeWorkload(rng, 100, 5, batch)
	rename := func(lines []stack.Line) {
		for i := range lines {
			lines[i].GameID = fmt.Sprintf("K%04d-%s", chunk, lines[i].GameID)
			lines[i].EventID = fmt.Sprintf("k%04d-%s", chunk, lines[i].EventID)
		}
	}
	for _, b := range w.batches {
		rename(b)
	}
	for _, b := range w.refused {
		rename(b)
	}
	return w
}

// percentile is the nearest-rank p-th percentile of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*p/100+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// stats are a kind's recovery numbers.
type stats struct {
	n             int
	p50, p99, max time.Duration
}

func statsOf(ds []time.Duration) stats {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return stats{}
	}
	return stats{n: len(s), p50: percentile(s, 50), p99: percentile(s, 99), max: s[len(s)-1]}
}
