package warehouse_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/s3test"
	"github.com/boxscore-dev/boxscore/services/loader/internal/s3stage"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/redshift")

// shardRequest is request for shardID, its rows positioned in that shard.
func shardRequest(shardID, expected, seq string, rows ...*warehousev1.BattingGameRow) *loadv1.LoadRequest {
	req := request(expected, seq, rows...)
	req.ShardId = shardID
	for _, r := range rows {
		if r.Position != nil {
			r.Position.ShardId = shardID
		}
	}
	return req
}

func shardName(i int) string { return fmt.Sprintf("shardId-%012d", 100+i) }

// stagedKeys lists the objects left in the staging bucket.
func stagedKeys(t *testing.T, client *s3.Client) []string {
	t.Helper()
	return s3test.Keys(t, client, testStagingBucket)
}

// loadAll sends reqs at once (they fall in one window) and returns each one's answer.
func loadAll(t *testing.T, s loaderStore, reqs []*loadv1.LoadRequest) ([]*loadv1.LoadResponse, []error) {
	t.Helper()
	resps, errs := make([]*loadv1.LoadResponse, len(reqs)), make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { resps[i], errs[i] = s.Load(t.Context(), req) })
	}
	wg.Wait()
	return resps, errs
}

// Several shards' batches arriving within the window are one transaction with one COPY;
// each caller gets its own counts, and the staged objects are gone after the commit.
func TestRedshiftWindowCommitsShardsInOneCopy(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnvWith(t, 2, func(c *warehouse.RedshiftConfig) { c.Window = 1500 * 1e6 }) // 1.5 s: room for all to arrive
	const shards = 4
	var reqs []*loadv1.LoadRequest
	for i := range shards {
		mustClaim(t, e.store, shardName(i), 1, testOwner)
		rows := make([]*warehousev1.BattingGameRow, i+1) // shard i carries i+1 rows
		for j := range rows {
			rows[j] = newRow(int64(1000*i+j+1), "g1", 1, fmt.Sprintf("evt-%d-%d", i, j), "10")
		}
		reqs = append(reqs, shardRequest(shardName(i), "", "10", rows...))
	}
	before := len(e.redshift.copies.statements())
	resps, errs := loadAll(t, e.store, reqs)
	for i := range shards {
		if errs[i] != nil {
			t.Fatalf("shard %d: %v", i, errs[i])
		}
		assertCounts(t, resps[i], counts{inserted: int32(i + 1)})
		if cp, err := e.store.GetCheckpoint(t.Context(), testStream, shardName(i)); err != nil || cp.GetSequenceNumber() != "10" {
			t.Errorf("checkpoint of shard %d = %v, %v; want 10", i, cp, err)
		}
	}
	if copies := len(e.redshift.copies.statements()) - before; copies != 1 {
		t.Errorf("%d COPY statements for one window, want 1", copies)
	}
	if n := countRows(t, e.pool, "fact_batting_game"); n != 1+2+3+4 {
		t.Errorf("fact rows = %d, want 10", n)
	}
	if keys := stagedKeys(t, e.redshift.s3); len(keys) != 0 {
		t.Errorf("staged objects left after the commit: %v", keys)
	}
}

// In one window, a fenced shard and a mismatched one are answered alone with the PG
// store's errors; the other shards commit, without the refused ones' rows.
func TestRedshiftFencedShardDoesNotBlockTheWindow(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnvWith(t, 2, func(c *warehouse.RedshiftConfig) { c.Window = 1500 * 1e6 })
	for i := range 3 {
		mustClaim(t, e.store, shardName(i), 1, testOwner)
	}
	mustClaim(t, e.store, shardName(1), 2, "consumer-b") // shard 1 taken over
	reqs := []*loadv1.LoadRequest{
		shardRequest(shardName(0), "", "10", newRow(1, "g1", 1, "evt-0", "10")),
		shardRequest(shardName(1), "", "10", newRow(2, "g1", 1, "evt-1", "10")),  // token 1: fenced
		shardRequest(shardName(2), "5", "10", newRow(3, "g1", 1, "evt-2", "10")), // expects 5: mismatch
	}
	_, errs := loadAll(t, e.store, reqs)
	if errs[0] != nil {
		t.Errorf("shard 0: %v", errs[0])
	}
	var fenced *warehouse.FencedError
	if !errors.As(errs[1], &fenced) || fenced.Stored.GetOwner() != "consumer-b" {
		t.Errorf("shard 1: %v, want *FencedError naming consumer-b", errs[1])
	}
	var mismatch *warehouse.CheckpointMismatchError
	if !errors.As(errs[2], &mismatch) {
		t.Errorf("shard 2: %v, want *CheckpointMismatchError", errs[2])
	}
	var players []int64
	rows, err := e.pool.Query(t.Context(), `SELECT player_id FROM `+testSchema+`.fact_batting_game ORDER BY player_id`)
	if err != nil {
		t.Fatal(err)
	}
	if players, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	if len(players) != 1 || players[0] != 1 {
		t.Errorf("fact players = %v, want only shard 0's player 1", players)
	}
}

// A COPY that Redshift refuses (a data error) fails the group; each request is then tried
// alone: only the batch carrying the bad file fails, permanently, and the others commit.
func TestRedshiftRefusedCopyFailsOnlyTheBadBatch(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnvWith(t, 2, func(c *warehouse.RedshiftConfig) { c.Window = 1500 * 1e6 })
	e.redshift.copies.refuseEventID = "evt-poison"
	for i := range 3 {
		mustClaim(t, e.store, shardName(i), 1, testOwner)
	}
	reqs := []*loadv1.LoadRequest{
		shardRequest(shardName(0), "", "10", newRow(1, "g1", 1, "evt-0", "10")),
		shardRequest(shardName(1), "", "10", newRow(2, "g1", 1, "evt-poison", "10")),
		shardRequest(shardName(2), "", "10", newRow(3, "g1", 1, "evt-2", "10")),
	}
	_, errs := loadAll(t, e.store, reqs)
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("good shards: %v, %v", errs[0], errs[2])
	}
	if !warehouse.IsDataError(errs[1]) || warehouse.IsTransient(errs[1]) {
		t.Errorf("bad shard: %v, want a permanent data error", errs[1])
	}
	if n := countRows(t, e.pool, "fact_batting_game"); n != 2 {
		t.Errorf("fact rows = %d, want the 2 good ones", n)
	}
	if cp := assertCheckpointOf(t, e.store, shardName(1)); cp.GetSequenceNumber() != "" {
		t.Errorf("the refused shard's checkpoint moved to %s", cp.GetSequenceNumber())
	}
}

func assertCheckpointOf(t *testing.T, s loaderStore, shardID string) *loadv1.Checkpoint {
	t.Helper()
	cp, err := s.GetCheckpoint(t.Context(), testStream, shardID)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// A COPY that loads fewer rows than were staged fails the group, which is retried whole
// and commits.
func TestRedshiftCopyCountMismatchIsRetried(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnv(t, 1)
	reader := sdkmetric.NewManualReader()
	if err := e.store.Instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	e.redshift.copies.dropOneRecordOnce = true
	resp := mustLoad(t, e.store, request("", "10", newRow(1, "g1", 1, "evt-1", "10"), newRow(2, "g1", 1, "evt-2", "10")))
	assertCounts(t, resp, counts{inserted: 2})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	var retries, groups int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name == "boxscore.loader.redshift_group_retries" {
					for _, dp := range data.DataPoints {
						retries += dp.Value
					}
				}
			case metricdata.Histogram[int64]:
				if m.Name == "boxscore.loader.redshift_group_loads" {
					for _, dp := range data.DataPoints {
						groups += int64(dp.Count)
					}
				}
			}
		}
	}
	if retries != 1 || groups != 1 {
		t.Errorf("metrics: %d group retries, %d groups committed; want 1 and 1", retries, groups)
	}
	if n := len(e.redshift.copies.statements()); n != 2 {
		t.Errorf("%d COPY statements, want 2 (the short one, then the retry)", n)
	}
	if keys := stagedKeys(t, e.redshift.s3); len(keys) != 0 {
		t.Errorf("staged objects left: %v", keys)
	}
}

// A line whose text Redshift cannot stage (NUL) is dead-lettered without failing the
// batch (on PostgreSQL the database refuses it and bisection isolates it).
func TestRedshiftUnstorableTextIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnv(t, 1)
	bad := newRow(2, "g1", 1, "evt-bad", "10")
	bad.Opponent = "S\x00F"
	resp := mustLoad(t, e.store, request("", "10", newRow(1, "g1", 1, "evt-1", "10"), bad))
	assertCounts(t, resp, counts{inserted: 1, deadLettered: 1})
	var reason, field string
	if err := e.pool.QueryRow(t.Context(), `SELECT reason, field FROM `+testSchema+`.dead_letter`).Scan(&reason, &field); err != nil {
		t.Fatal(err)
	}
	if reason != warehouse.ReasonUnstorableText || field != "opponent" {
		t.Errorf("dead letter (%s, %s), want (%s, opponent)", reason, field, warehouse.ReasonUnstorableText)
	}
}

// Two loader replicas (two RedshiftStores, two pools, serializable transactions) write
// the same keys from different shards at once: with no primary key, the load's MERGE
// logic alone keeps (player, game) unique, and each key ends at its greatest version.
func TestRedshiftConcurrentLoadersKeepKeysUnique(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnv(t, 2)
	config := e.pool.Config()
	other, err := pgxpool.NewWithConfig(t.Context(), config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	second := startRedshiftStore(t, other, e.redshift.s3, "loader-b", e.redshift.copies, nil)
	stores := []loaderStore{e.store, second}

	const shards, rounds, players = 4, 5, 20
	for i := range shards {
		mustClaim(t, e.store, shardName(i), 1, testOwner)
	}
	var wg sync.WaitGroup
	errs := make(chan error, shards*rounds)
	for i := range shards {
		wg.Go(func() {
			prev := ""
			for r := range rounds {
				seq := fmt.Sprint(10 * (r + 1))
				rows := make([]*warehousev1.BattingGameRow, players)
				for p := range rows {
					// Every shard writes every key; versions interleave across shards.
					rows[p] = newRow(int64(p+1), "g1", int64(r*shards+i+1), fmt.Sprintf("evt-%d-%d", i, r), seq)
				}
				// Each shard is loaded through one replica, alternating.
				if _, err := stores[(i+r)%2].Load(t.Context(), shardRequest(shardName(i), prev, seq, rows...)); err != nil {
					errs <- fmt.Errorf("shard %d round %d: %w", i, r, err)
					return
				}
				prev = seq
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var dupes int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT player_id, game_id FROM `+testSchema+
		`.fact_batting_game GROUP BY player_id, game_id HAVING count(*) > 1) d`).Scan(&dupes); err != nil {
		t.Fatal(err)
	}
	if dupes != 0 {
		t.Errorf("%d (player, game) keys stored more than once", dupes)
	}
	var keys, wrong int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE version <> $1) FROM `+testSchema+`.fact_batting_game`,
		int64(rounds*shards)).Scan(&keys, &wrong); err != nil {
		t.Fatal(err)
	}
	if keys != players || wrong != 0 {
		t.Errorf("%d keys, %d not at the greatest version %d; want %d keys all at it", keys, wrong, rounds*shards, players)
	}
}

// The statements of a claim and of a load (lines, a retraction, a rejection) are as in
// testdata/redshift; run with -update to rewrite them after a deliberate change.
func TestRedshiftGoldenSQL(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnv(t, 1)
	rec := e.redshift.recorder

	mark := len(rec.all())
	mustClaim(t, e.store, shardName(0), 1, testOwner)
	claim := rec.all()[mark:]

	mustLoad(t, e.store, request("", "10", newRow(1, "g1", 1, "evt-1", "10")))
	mark, copyMark := len(rec.all()), len(e.redshift.copies.statements())
	req := request("10", "20", newRow(1, "g1", 2, "evt-2", "11"), newRow(2, "g1", 1, "evt-3", "12"), newTombstone(3, "g1", 1, "evt-4", "13"))
	req.Rejections = []*warehousev1.Rejection{newRejection("14", "validate")}
	assertCounts(t, mustLoad(t, e.store, req), counts{inserted: 2, updated: 1, deadLettered: 1})
	// The COPY goes through the double (not the recorder): it is listed after the
	// transaction's statements.
	load := append(rec.all()[mark:], e.redshift.copies.statements()[copyMark:]...)

	for name, statements := range map[string][]string{"claim.sql": claim, "load.sql": load} {
		got := strings.Join(statements, ";\n\n") + ";\n"
		path := filepath.Join("testdata", "redshift", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestRedshiftGoldenSQL -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from the statements sent (run with -update after a deliberate change):\n%s", path, got)
		}
	}
}

// The store's configuration is checked.
func TestRedshiftConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (warehouse.RedshiftConfig{}).Validate(); err == nil {
		t.Error("empty config accepted")
	}
	stager, err := s3stage.New(nil, "s3://b/p/")
	if err != nil {
		t.Fatal(err)
	}
	good := warehouse.RedshiftConfig{Schema: testSchema, CopyRoleARN: testCopyRole, LoaderID: "a", Stager: stager}
	if err := good.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	for _, bad := range []func(*warehouse.RedshiftConfig){
		func(c *warehouse.RedshiftConfig) { c.Window = 1e6 },                            // 1 ms
		func(c *warehouse.RedshiftConfig) { c.Window = 61e9 },                           // 61 s
		func(c *warehouse.RedshiftConfig) { c.LoaderID = "a/b" },                        // a key separator
		func(c *warehouse.RedshiftConfig) { c.CopyRoleARN = "" },                        // no role
		func(c *warehouse.RedshiftConfig) { c.MaxGroupRows = -1 },                       // negative
		func(c *warehouse.RedshiftConfig) { c.CopyRoleARN = `arn:aws:iam::1:role/a\'` }, // breaks out of COPY's literal on Redshift
	} {
		cfg := warehouse.RedshiftConfig{Schema: testSchema, CopyRoleARN: testCopyRole, LoaderID: "a", Stager: stager}
		bad(&cfg)
		if _, err := warehouse.NewRedshiftStore(nil, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// pgDataError is what a refused COPY looks like to the store (SQLSTATE class 22).
func pgDataError(msg string) error {
	return &pgconn.PgError{Severity: "ERROR", Code: "22P04", Message: msg}
}

// Dead letters go in statements of bounded size (more than one here), and duplicates
// among them (same position and stage) are stored once, as the PostgreSQL keys do.
func TestRedshiftManyDeadLettersAndDuplicates(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnv(t, 1)
	req := request("", "2000")
	for i := range 1200 {
		req.Rejections = append(req.Rejections, newRejection(fmt.Sprint(i+1), "validate"))
	}
	req.Rejections = append(req.Rejections, newRejection("7", "validate")) // a repeat
	resp := mustLoad(t, e.store, req)
	if resp.GetDeadLettered() != 1200 {
		t.Errorf("dead_lettered = %d, want 1200", resp.GetDeadLettered())
	}
	if n := countRows(t, e.pool, "dead_letter"); n != 1200 {
		t.Errorf("dead letters stored = %d, want 1200", n)
	}
	inserts := 0
	for _, sql := range e.redshift.recorder.all() {
		if strings.HasPrefix(sql, `INSERT INTO "wh".dead_letter`) {
			inserts++
		}
	}
	if inserts < 3 {
		t.Errorf("%d dead-letter statements for 1200 letters, want at least 3 (500 per statement)", inserts)
	}
	var payload []byte
	if err := e.pool.QueryRow(t.Context(), `SELECT payload FROM `+testSchema+`.dead_letter WHERE sequence_number = '7'`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if want := newRejection("7", "validate").GetPayload(); string(payload) != string(want) {
		t.Errorf("payload = %x, want %x (bytes through from_hex)", payload, want)
	}
}

// S3 refusing the staging: the group is retried (bounded) and commits once S3 accepts;
// while it refuses, the Load fails with a transient error (the consumer retries it, never
// dead-letters it), nothing is committed and nothing stays staged.
func TestRedshiftStagingFailureIsTransientAndRetried(t *testing.T) {
	t.Parallel()
	var target atomic.Pointer[url.URL]
	var refusals atomic.Int64 // PUTs still to refuse
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && refusals.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden) // not retried by the SDK itself
			_, _ = io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>injected</Message></Error>`)
			return
		}
		httputil.NewSingleHostReverseProxy(target.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	e := newRedshiftEnvWith(t, 1, func(c *warehouse.RedshiftConfig) {
		stager, err := s3stage.New(s3test.Client(front.URL), "s3://"+testStagingBucket+"/loads/")
		if err != nil {
			t.Fatal(err)
		}
		c.Stager, c.MaxAttempts = stager, 2
	})
	u, err := url.Parse(e.redshift.s3Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	target.Store(u)

	req := request("", "10", newRow(1, "g1", 1, "evt-1", "10"))
	refusals.Store(1 << 20)
	_, err = e.store.Load(t.Context(), req)
	var staging *warehouse.StagingError
	if !errors.As(err, &staging) || !warehouse.IsTransient(err) {
		t.Fatalf("Load with S3 refusing: %v, want a transient *StagingError", err)
	}
	if cp := assertCheckpointOf(t, e.store, testShard); cp.GetSequenceNumber() != "" || countRows(t, e.pool, "fact_batting_game") != 0 {
		t.Fatalf("a failed staging committed: checkpoint %v", cp)
	}
	if keys := stagedKeys(t, e.redshift.s3); len(keys) != 0 {
		t.Errorf("objects left by the failed staging: %v", keys)
	}

	refusals.Store(1) // the next PUT fails, then S3 recovers: the group's retry commits
	assertCounts(t, mustLoad(t, e.store, req), counts{inserted: 1})
	if keys := stagedKeys(t, e.redshift.s3); len(keys) != 0 {
		t.Errorf("staged objects left after the commit: %v", keys)
	}
}

// A group closes once it carries MaxGroupRows rows, without waiting for the window: three
// loads of two rows with a cap of two are three COPYs, all committed well before the
// (long) window would have ended.
func TestRedshiftGroupRowCapClosesTheGroup(t *testing.T) {
	t.Parallel()
	e := newRedshiftEnvWith(t, 2, func(c *warehouse.RedshiftConfig) { c.Window, c.MaxGroupRows = 60e9, 2 })
	var reqs []*loadv1.LoadRequest
	for i := range 3 {
		mustClaim(t, e.store, shardName(i), 1, testOwner)
		reqs = append(reqs, shardRequest(shardName(i), "", "10",
			newRow(int64(10*i+1), "g1", 1, "evt-a", "10"), newRow(int64(10*i+2), "g1", 1, "evt-b", "10")))
	}
	before := len(e.redshift.copies.statements())
	start := time.Now()
	_, errs := loadAll(t, e.store, reqs)
	for i, err := range errs {
		if err != nil {
			t.Errorf("shard %d: %v", i, err)
		}
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("loads took %s: the groups waited for the window", elapsed)
	}
	if copies := len(e.redshift.copies.statements()) - before; copies != 3 {
		t.Errorf("%d COPYs, want 3 (one per capped group)", copies)
	}
}
