package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
)

// PipelineConfig says what NewPipeline runs the stack on.
type PipelineConfig struct {
	// Config is the stack's; its KinesisEndpoint, Stream and DatabaseURL are filled in
	// when empty.
	Config
	// Shards is the shard count of the stream created for the test (default 4).
	Shards int
	// Kinesalite, when set, is the kinesalite to create the stream on (a process the test
	// restarts); by default the test binary's shared one.
	Kinesalite *kinesalitetest.Server
}

// Pipeline is a stack on a test's own stream and warehouse database, with the ways tests
// look at the stream, the warehouse, the leases and the services' metrics.
type Pipeline struct {
	*Stack
	T       testing.TB
	Stream  string
	Kinesis *kinesis.Client
	// DB is a pool on the warehouse database (which holds the consumer's leases too).
	DB *pgxpool.Pool
}

// NewPipeline creates the stream and the database, and the stack on them (started by
// StartAll or Start). It waits for nothing.
func NewPipeline(t testing.TB, cfg PipelineConfig) *Pipeline {
	t.Helper()
	if cfg.Shards == 0 {
		cfg.Shards = 4
	}
	if cfg.Kinesalite == nil {
		cfg.Kinesalite = kinesalitetest.Start(t)
	}
	if cfg.Stream == "" {
		cfg.Stream = kinesalitetest.UniqueName(t)
		cfg.Kinesalite.CreateStream(t, cfg.Stream, int32(cfg.Shards))
	}
	cfg.KinesisEndpoint = cfg.Kinesalite.Endpoint
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = pgtest.NewDatabase(t)
	}
	pool, err := pgxpool.New(context.Background(), cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &Pipeline{Stack: New(t, cfg.Config), T: t, Stream: cfg.Stream, Kinesis: cfg.Kinesalite.Client(t), DB: pool}
}

// WaitFor polls cond until it holds and returns how long that took; after timeout it
// dumps the services' logs and fails the test.
func (p *Pipeline) WaitFor(timeout time.Duration, what string, cond func() bool) time.Duration {
	p.T.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			p.DumpLogs()
			p.T.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// DumpLogs logs the tail of every instance's log, routine batch commits left out, so lease
// moves, shard starts and errors show.
func (p *Pipeline) DumpLogs() {
	for _, name := range p.Instances() {
		var kept []string
		for _, l := range strings.Split(p.Log(name), "\n") {
			if l != "" && !strings.Contains(l, `"batch committed"`) {
				kept = append(kept, l)
			}
		}
		p.T.Logf("--- %s log (tail, commits left out) ---\n%s", name, strings.Join(kept[max(len(kept)-25, 0):], "\n"))
	}
}

// WaitSchema waits for the loader's migrations (its first start creates the tables).
func (p *Pipeline) WaitSchema() {
	p.T.Helper()
	p.WaitFor(30*time.Second, "the warehouse schema", func() bool {
		var ok bool
		err := p.DB.QueryRow(context.Background(), "SELECT to_regclass('boxscore.fact_batting_game') IS NOT NULL").Scan(&ok)
		return err == nil && ok
	})
}

// Count runs a count query, failing the test on an error.
func (p *Pipeline) Count(query string, args ...any) int {
	p.T.Helper()
	var n int
	if err := p.DB.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		p.T.Fatalf("%s: %v", query, err)
	}
	return n
}

// Now is the database's clock, which stamps checkpoints, leases and rows.
func (p *Pipeline) Now() time.Time {
	p.T.Helper()
	var t time.Time
	if err := p.DB.QueryRow(context.Background(), "SELECT now()").Scan(&t); err != nil {
		p.T.Fatal(err)
	}
	return t
}

// ReadStream reads every shard of the stream from its start.
func (p *Pipeline) ReadStream() (streamtest.Contents, error) {
	return streamtest.Read(context.Background(), p.Kinesis, p.Stream)
}

// Checkpoint is one shard's row of shard_checkpoint.
type Checkpoint struct {
	Sequence string
	ShardEnd bool
	Consumer string // consumer_id: who committed last
	Token    int64  // the lease token it committed under
	Updated  time.Time
}

// Checkpoints reads the stream's committed checkpoints: shard id -> row.
func (p *Pipeline) Checkpoints(ctx context.Context) (map[string]Checkpoint, error) {
	rows, err := p.DB.Query(ctx, `SELECT shard_id, sequence_number, shard_end, coalesce(consumer_id, ''), lease_token, updated_at
		FROM boxscore.shard_checkpoint WHERE stream = $1`, p.Stream)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Checkpoint{}
	for rows.Next() {
		var id string
		var c Checkpoint
		if err := rows.Scan(&id, &c.Sequence, &c.ShardEnd, &c.Consumer, &c.Token, &c.Updated); err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, rows.Err()
}

// CheckpointsAt reports whether the committed checkpoint of every shard in want is at its
// sequence number.
func (p *Pipeline) CheckpointsAt(want map[string]string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cps, err := p.Checkpoints(ctx)
	if err != nil {
		return false
	}
	for shard, seq := range want {
		if cps[shard].Sequence != seq {
			return false
		}
	}
	return true
}

// Settle waits until every shard's checkpoint is at the shard's last record: everything in
// the stream has been committed or dead-lettered. It fails the test on an empty stream.
func (p *Pipeline) Settle(timeout time.Duration) {
	p.T.Helper()
	contents, err := p.ReadStream()
	if err != nil {
		p.T.Fatalf("read the stream: %v", err)
	}
	ends := contents.Ends()
	if len(ends) == 0 {
		p.T.Fatal("the stream is empty")
	}
	p.WaitFor(timeout, "checkpoints at the end of every shard", func() bool { return p.CheckpointsAt(ends) })
}

// WaitRows waits until the warehouse holds at least n fact rows.
func (p *Pipeline) WaitRows(n int, timeout time.Duration) {
	p.T.Helper()
	p.WaitFor(timeout, fmt.Sprintf("%d rows in the warehouse", n), func() bool {
		var got int
		err := p.DB.QueryRow(context.Background(), "SELECT count(*) FROM boxscore.fact_batting_game").Scan(&got)
		return err == nil && got >= n
	})
}

// Lease is one shard's row of the consumer's lease table.
type Lease struct {
	Owner   string
	Counter int64
}

// Leases reads the consumer group's lease table for the stream: shard id -> row.
func (p *Pipeline) Leases(ctx context.Context) (map[string]Lease, error) {
	rows, err := p.DB.Query(ctx, `SELECT shard_id, coalesce(owner, ''), counter FROM boxscore_lease.shard_lease WHERE stream = $1`, p.Stream)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Lease{}
	for rows.Next() {
		var id string
		var l Lease
		if err := rows.Scan(&id, &l.Owner, &l.Counter); err != nil {
			return nil, err
		}
		out[id] = l
	}
	return out, rows.Err()
}

// Assignment is what a consumer replica's GET /leases answers.
type Assignment struct {
	Worker string `json:"worker"`
	Shards []struct {
		ShardID string `json:"shardId"`
		Token   int64  `json:"leaseToken"`
		Reading bool   `json:"reading"`
	} `json:"shards"`
}

// Assignment asks a consumer replica which shards it holds.
func (p *Pipeline) Assignment(name string) (Assignment, error) {
	var a Assignment
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(p.AdminURL(name) + "/leases")
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("GET /leases of %s: %s", name, resp.Status)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}

// Row is one fact row of the warehouse, every column a test can check.
type Row struct {
	Line
	Singles, TotalBases int
	Shard, Sequence     string
	TraceID             string
	LoadedAt            time.Time
}

// Rows reads the warehouse's fact rows (joined with the player's name) by event id.
func (p *Pipeline) Rows() map[string]Row {
	p.T.Helper()
	rows, err := p.DB.Query(context.Background(), `
		SELECT f.player_id, f.game_id, f.event_id, f.version, f.game_date::text, f.game_number, f.opponent, f.home,
		       f.plate_appearances, f.at_bats, f.runs, f.hits, f.singles, f.doubles, f.triples, f.home_runs, f.rbi,
		       f.base_on_balls, f.intentional_walks, f.strike_outs, f.hit_by_pitch, f.sac_bunts, f.sac_flies,
		       f.stolen_bases, f.caught_stealing, f.ground_into_double_play, f.total_bases, p.name,
		       coalesce(f.source_shard_id, ''), coalesce(f.source_sequence_number, ''), coalesce(f.trace_id, ''), f.loaded_at
		FROM boxscore.fact_batting_game f JOIN boxscore.dim_player p USING (player_id)`)
	if err != nil {
		p.T.Fatal(err)
	}
	defer rows.Close()
	out := map[string]Row{}
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.PlayerID, &r.GameID, &r.EventID, &r.Version, &r.Date, &r.GameNumber, &r.Opponent, &r.Home,
			&r.PA, &r.AB, &r.R, &r.H, &r.Singles, &r.D2, &r.D3, &r.HR, &r.RBI, &r.BB, &r.IBB, &r.SO,
			&r.HBP, &r.SH, &r.SF, &r.SB, &r.CS, &r.GIDP, &r.TotalBases, &r.Name,
			&r.Shard, &r.Sequence, &r.TraceID, &r.LoadedAt); err != nil {
			p.T.Fatal(err)
		}
		if prev, dup := out[r.EventID]; dup {
			p.T.Errorf("event %s is in two rows: %s and %s", r.EventID, prev.Key(), r.Key())
		}
		out[r.EventID] = r
	}
	if err := rows.Err(); err != nil {
		p.T.Fatal(err)
	}
	return out
}

// DeadLetter is one row of the dead-letter table.
type DeadLetter struct {
	EventID, Stage, Reason, Shard, Sequence string
	Payload                                 []byte
}

// DeadLetters reads the dead-letter table, ordered by event id.
func (p *Pipeline) DeadLetters() []DeadLetter {
	p.T.Helper()
	rows, err := p.DB.Query(context.Background(), `SELECT coalesce(event_id, ''), stage, reason, coalesce(shard_id, ''),
		coalesce(sequence_number, ''), coalesce(payload, ''::bytea) FROM boxscore.dead_letter ORDER BY event_id`)
	if err != nil {
		p.T.Fatal(err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var d DeadLetter
		if err := rows.Scan(&d.EventID, &d.Stage, &d.Reason, &d.Shard, &d.Sequence, &d.Payload); err != nil {
			p.T.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		p.T.Fatal(err)
	}
	return out
}

// AssertExactlyOnce checks the warehouse against the ledger: for every accepted (player,
// game), one row with every value of its greatest accepted (version, event id); for every
// accepted impossible line, one dead letter (stage validate, with its reason, shard,
// sequence number and payload) and no row; nothing for refused events; nothing else. It
// returns the rows by event id.
func (p *Pipeline) AssertExactlyOnce(led *Ledger) map[string]Row {
	p.T.Helper()
	t := p.T
	want := map[string]Line{} // key -> the line that must win
	impossible := map[string]Line{}
	for _, l := range led.Accepted() {
		if l.Impossible {
			impossible[l.EventID] = l
			continue
		}
		cur, ok := want[l.Key()]
		if !ok || l.Version > cur.Version || (l.Version == cur.Version && l.EventID > cur.EventID) {
			want[l.Key()] = l
		}
	}
	refused := led.Refused()
	got := p.Rows()
	seen := map[string]bool{}
	mismatches := 0
	for _, r := range got {
		k := r.Key()
		if seen[k] {
			t.Errorf("two rows for %s", k) // impossible with the primary key; checked anyway
		}
		seen[k] = true
		w, ok := want[k]
		switch {
		case !ok:
			if _, isRefused := refused[r.EventID]; isRefused {
				t.Errorf("row %s comes from a refused event %s", k, r.EventID)
			} else {
				t.Errorf("row %s (event %s) for an event never accepted", k, r.EventID)
			}
		case r.Line != w || r.Singles != w.Singles() || r.TotalBases != w.TotalBases():
			if mismatches++; mismatches <= 10 {
				t.Errorf("row %s:\n got %+v (1B %d, TB %d)\nwant %+v (1B %d, TB %d)", k, r.Line, r.Singles, r.TotalBases,
					w, w.Singles(), w.TotalBases())
			}
		}
	}
	missing := 0
	for k := range want {
		if !seen[k] {
			if missing++; missing <= 10 {
				t.Errorf("accepted line %s is not in the warehouse", k)
			}
		}
	}
	if missing > 0 || mismatches > 0 {
		t.Errorf("%d accepted lines missing, %d rows with the wrong version or values, of %d", missing, mismatches, len(want))
	}

	dead := map[string]bool{}
	for _, d := range p.DeadLetters() {
		if _, ok := impossible[d.EventID]; !ok {
			t.Errorf("unexpected dead letter %q (stage %s, reason %s)", d.EventID, d.Stage, d.Reason)
		}
		if dead[d.EventID] {
			t.Errorf("dead letter %s twice", d.EventID)
		}
		dead[d.EventID] = true
		if d.Stage != "validate" || d.Reason == "" || d.Shard == "" || d.Sequence == "" || len(d.Payload) == 0 {
			t.Errorf("dead letter %s: stage %q reason %q at %q/%q, %d bytes of payload", d.EventID, d.Stage, d.Reason, d.Shard, d.Sequence, len(d.Payload))
		}
	}
	for id := range impossible {
		if !dead[id] {
			t.Errorf("impossible line %s is not dead-lettered", id)
		}
	}
	if why := led.Why(); len(why) > 0 {
		t.Logf("refusals: %q", why)
	}
	t.Logf("warehouse: %d rows as expected (%d accepted events, %d refused), %d dead letters", len(got), led.AcceptedCount(), len(refused), len(dead))
	return got
}

// AssertEveryShardUsed checks that the test exercised every open shard of the stream: the
// gateway acknowledged events in each, and the warehouse holds rows read from each.
func (p *Pipeline) AssertEveryShardUsed(led *Ledger) {
	p.T.Helper()
	shards, err := streamtest.Shards(context.Background(), p.Kinesis, p.Stream)
	if err != nil {
		p.T.Fatal(err)
	}
	acked := led.EventsPerShard()
	loaded := map[string]int{}
	for _, r := range p.Rows() {
		loaded[r.Shard]++
	}
	var desc []string
	for _, s := range shards {
		id := (streamtest.Shard{Shard: s}).ID()
		if !(streamtest.Shard{Shard: s}).Open() {
			continue
		}
		if acked[id] == 0 || loaded[id] == 0 {
			p.T.Errorf("shard %s: %d events acknowledged, %d rows loaded: the test does not cover every shard", id, acked[id], loaded[id])
		}
		desc = append(desc, fmt.Sprintf("%s %d/%d", id, acked[id], loaded[id]))
	}
	sort.Strings(desc)
	p.T.Logf("events acknowledged/rows loaded per shard: %s", strings.Join(desc, ", "))
}
