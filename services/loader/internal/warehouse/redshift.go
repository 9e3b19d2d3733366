package warehouse

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/s3stage"
)

// Window bounds of RedshiftConfig.Window.
const (
	MinRedshiftWindow     = 100 * time.Millisecond
	MaxRedshiftWindow     = 60 * time.Second
	DefaultRedshiftWindow = 2 * time.Second
	// DefaultRedshiftGroupRows caps the rows of one group (one COPY, one MERGE).
	DefaultRedshiftGroupRows = 200_000
	// DefaultRedshiftAttempts bounds the tries of a group that meets transient errors.
	DefaultRedshiftAttempts = 5
)

// RedshiftConfig configures a RedshiftStore.
type RedshiftConfig struct {
	// Schema holds the warehouse tables (migrations.Redshift).
	Schema string
	// Stager writes each group's rows to S3 for COPY.
	Stager *s3stage.Stager
	// CopyRoleARN is the IAM role Redshift assumes to read the staged objects.
	CopyRoleARN string
	// LoaderID names this replica in the staged objects' keys (with a group number), so
	// two replicas never write the same keys.
	LoaderID string
	// Window is how long the first Load of a group waits for others (MinRedshiftWindow to
	// MaxRedshiftWindow; 0: DefaultRedshiftWindow).
	Window time.Duration
	// MaxGroupRows closes a group early once its requests carry that many rows (0:
	// DefaultRedshiftGroupRows).
	MaxGroupRows int
	// MaxAttempts bounds the tries of a group after transient errors (0:
	// DefaultRedshiftAttempts).
	MaxAttempts int
	// Logger receives what is only logged (staged objects that could not be removed).
	Logger *slog.Logger
	// CopyFromS3 runs the COPY statement in tx. nil: tx.Exec, as on Redshift. The tests
	// on PostgreSQL replace it with a double that reads the staged objects back.
	CopyFromS3 func(ctx context.Context, tx pgx.Tx, copySQL string) error
}

// Validate reports what is wrong with c.
func (c RedshiftConfig) Validate() error {
	var errs []error
	if c.Stager == nil {
		errs = append(errs, errors.New("redshift: no S3 stager (--redshift-staging-uri)"))
	}
	if c.CopyRoleARN == "" {
		errs = append(errs, errors.New("redshift: no COPY role (--redshift-copy-role-arn)"))
	}
	if strings.ContainsAny(c.CopyRoleARN, `'\`) {
		// It is written into the COPY statement as a literal (see quoteLiteral).
		errs = append(errs, fmt.Errorf("redshift: COPY role %q holds a quote or backslash", c.CopyRoleARN))
	}
	if c.LoaderID == "" || strings.ContainsAny(c.LoaderID, "/ ") {
		errs = append(errs, fmt.Errorf("redshift: loader id %q must be non-empty, without '/' or spaces", c.LoaderID))
	}
	if c.Window != 0 && (c.Window < MinRedshiftWindow || c.Window > MaxRedshiftWindow) {
		errs = append(errs, fmt.Errorf("redshift: batch window %s outside %s..%s", c.Window, MinRedshiftWindow, MaxRedshiftWindow))
	}
	if c.MaxGroupRows < 0 || c.MaxAttempts < 0 {
		errs = append(errs, errors.New("redshift: negative group rows or attempts"))
	}
	return errors.Join(errs...)
}

// RedshiftStore loads batches into Amazon Redshift (or, in tests, PostgreSQL through the
// same statements): the Loads arriving within a window are committed together, in one
// transaction with one COPY and one MERGE, and each is answered after the commit with its
// own response. It satisfies the gRPC server's Warehouse; Run must be running for Load
// to be answered.
//
// One group's transaction, in order:
//
//  1. LOCK TABLE of every table it writes (serializes the replicas; avoids most
//     serializable conflicts);
//  2. per request, the compare-and-set of its checkpoint under its lease token (UPDATE,
//     then SELECT: no RETURNING). A fenced or mismatched request is answered alone with
//     *FencedError or *CheckpointMismatchError; the others go on;
//  3. a temporary staging table, COPY from the group's manifest (staged in S3 before the
//     transaction), pg_last_copy_count() checked against the rows staged; the rows of
//     refused requests deleted;
//  4. per key, the greatest (version, event_id) of the group, kept only when above the
//     stored line and tombstone (rs_load_effective); the counts read from it;
//  5. MERGE of the lines; the tombstones delete their lines and replace older tombstones;
//     dim_player updated then inserted; dead letters (INSERT ... WHERE NOT EXISTS); gaps;
//  6. COMMIT, then the staged objects are removed (a failure is only logged: a lifecycle
//     rule on the staging prefix is the backstop).
//
// Serializable conflicts and connection errors retry the whole group (bounded, with
// backoff). A data error (the COPY or a statement refusing a value) fails the group; each
// of its requests is then tried alone, so that only the bad batch fails, permanently (the
// consumer isolates its records).
type RedshiftStore struct {
	pool    *pgxpool.Pool
	dialect *RedshiftDialect
	cfg     RedshiftConfig
	queue   chan *pendingLoad
	stopped chan struct{} // closed when Run has returned
	groups  atomic.Int64
	metrics *metrics
	staging metric.Int64Counter // staged objects not removed
	// groupLoads is the number of Loads per committed group; groupRetries counts the
	// tries of a group that failed transiently and were repeated. nil: not instrumented.
	groupLoads   metric.Int64Histogram
	groupRetries metric.Int64Counter
}

// pendingLoad is one Load waiting for its group's commit.
type pendingLoad struct {
	ctx   context.Context
	req   *loadv1.LoadRequest
	b     *batch
	rows  int
	reply chan loadAnswer // buffered: the group never blocks on a caller gone
	// result is what the committed group wrote for this request, for the metrics.
	result commitResult
}

type loadAnswer struct {
	resp *loadv1.LoadResponse
	err  error
}

// NewRedshiftStore returns a store writing to the Redshift tables of cfg.Schema through
// pool, which must run in pgx's exec mode (pgx.QueryExecModeExec: the extended protocol,
// unnamed statements, text-format arguments; see the loader's withExecMode for why).
func NewRedshiftStore(pool *pgxpool.Pool, cfg RedshiftConfig) (*RedshiftStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dialect, err := NewRedshiftDialect(cfg.Schema)
	if err != nil {
		return nil, err
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultRedshiftWindow
	}
	if cfg.MaxGroupRows == 0 {
		cfg.MaxGroupRows = DefaultRedshiftGroupRows
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultRedshiftAttempts
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CopyFromS3 == nil {
		cfg.CopyFromS3 = func(ctx context.Context, tx pgx.Tx, copySQL string) error {
			_, err := tx.Exec(ctx, copySQL)
			return err
		}
	}
	return &RedshiftStore{pool: pool, dialect: dialect, cfg: cfg, queue: make(chan *pendingLoad), stopped: make(chan struct{})}, nil
}

// Instrument makes the store record the loader's metrics (those of Store) on meter, and
// boxscore.loader.staging_cleanup_failures.
func (s *RedshiftStore) Instrument(meter metric.Meter) error {
	m, err := newMetrics(meter)
	if err != nil {
		return err
	}
	cleanup, err := meter.Int64Counter("boxscore.loader.staging_cleanup_failures", metric.WithUnit("{load}"),
		metric.WithDescription("Redshift loads whose staged S3 objects could not be removed after the commit (the staging prefix's lifecycle rule removes them later)."))
	loads, errLoads := meter.Int64Histogram("boxscore.loader.redshift_group_loads", metric.WithUnit("{load}"),
		metric.WithDescription("Loads (shard batches) committed together in one Redshift transaction (one COPY, one MERGE)."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256))
	retries, errRetries := meter.Int64Counter("boxscore.loader.redshift_group_retries", metric.WithUnit("{try}"),
		metric.WithDescription("Redshift group transactions repeated after a transient error (serializable conflict, connection, S3 staging, short COPY)."))
	if err := errors.Join(err, errLoads, errRetries); err != nil {
		return fmt.Errorf("warehouse metrics: %w", err)
	}
	s.metrics, s.staging, s.groupLoads, s.groupRetries = m, cleanup, loads, retries
	return nil
}

// Claim implements the gRPC Warehouse (see Store.Claim): same rules, Redshift statements.
func (s *RedshiftStore) Claim(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error) {
	var resp *loadv1.ClaimShardResponse
	err := s.retry(ctx, func() error {
		var err error
		resp, err = claimShard(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, s.dialect, req)
		return err
	})
	return resp, err
}

// ClaimShard is Claim returning the checkpoint only.
func (s *RedshiftStore) ClaimShard(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.Checkpoint, error) {
	resp, err := s.Claim(ctx, req)
	return resp.GetCheckpoint(), err
}

// GetCheckpoint implements the gRPC Warehouse (see Store.GetCheckpoint).
func (s *RedshiftStore) GetCheckpoint(ctx context.Context, stream, shardID string) (*loadv1.Checkpoint, error) {
	return getCheckpoint(ctx, s.pool, s.dialect, stream, shardID)
}

// retry runs f until it succeeds, fails with an error that is not transient, or
// MaxAttempts tries are spent, with a doubling backoff from 100 ms.
func (s *RedshiftStore) retry(ctx context.Context, f func() error) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !IsTransient(err) || attempt >= s.cfg.MaxAttempts {
			return err
		}
		if s.groupRetries != nil {
			s.groupRetries.Add(ctx, 1)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Load queues req into the current window's group and answers once the group committed
// (or failed). Validation errors are answered at once. See RedshiftStore for the
// transaction and Store.Load for the counts and errors, which are the same.
func (s *RedshiftStore) Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	b, err := prepareBatch(req)
	if err != nil {
		s.metrics.recordLoad(ctx, err, nil, nil, time.Time{})
		return nil, err
	}
	refuseUnstageableText(b)
	p := &pendingLoad{ctx: ctx, req: req, b: b, rows: len(b.rows) + len(b.tombstones), reply: make(chan loadAnswer, 1)}
	select {
	case s.queue <- p:
	case <-s.stopped:
		return nil, fmt.Errorf("load %s/%s: the loader is stopping: %w", req.GetStream(), req.GetShardId(), context.Canceled)
	case <-ctx.Done():
		return nil, fmt.Errorf("load %s/%s: waiting for a window: %w", req.GetStream(), req.GetShardId(), ctx.Err())
	}
	select {
	case a := <-p.reply:
		return a.resp, a.err
	case <-ctx.Done():
		// The group may still commit the batch: like a lost answer, the consumer's next
		// Load sees the checkpoint moved.
		return nil, fmt.Errorf("load %s/%s: waiting for the group's commit: %w", req.GetStream(), req.GetShardId(), ctx.Err())
	}
}

// refuseUnstageableText dead-letters the lines with a text value holding NUL or invalid
// UTF-8 before they are staged: on PostgreSQL the database refuses them and bisection
// isolates them, but Redshift's COPY would fail the whole group (and NUL marks NULL in the
// staged CSV). The letters have the reason of a refused tombstone (ReasonUnstorableText).
func refuseUnstageableText(b *batch) {
	kept := b.rows[:0]
	for i := range b.rows {
		row := &b.rows[i]
		if column, problem := rowTextProblem(row); column != "" {
			b.letters = append(b.letters, unstorableRowLetter(row, column, problem, b.checkpoint))
			b.tooLong++
			continue
		}
		kept = append(kept, *row)
	}
	b.rows = kept
}

// rowTextProblem returns the first text column of row that cannot be stored as is, and why.
func rowTextProblem(row *FactRow) (column, problem string) {
	return firstTextProblem(row, func(value string) string { return textProblem(value, MaxRowText) })
}

func unstorableRowLetter(row *FactRow, column, problem string, cp CheckpointUpdate) DeadLetter {
	letter := rowLetter(row, cp)
	letter.Reason = ReasonUnstorableText
	letter.Field = column
	letter.Detail = column + " " + problem
	return letter
}

// Run groups the Loads arriving within the window and commits each group, until ctx is
// done; the group in progress then fails (its transaction is rolled back) and later Loads
// are refused. Register it as a worker of the service; call it once.
func (s *RedshiftStore) Run(ctx context.Context) error {
	defer close(s.stopped)
	for {
		var first *pendingLoad
		select {
		case <-ctx.Done():
			return nil
		case first = <-s.queue:
		}
		group := []*pendingLoad{first}
		rows := first.rows
		timer := time.NewTimer(s.cfg.Window)
	collect:
		for rows < s.cfg.MaxGroupRows {
			select {
			case p := <-s.queue:
				group = append(group, p)
				rows += p.rows
			case <-timer.C:
				break collect
			case <-ctx.Done():
				break collect
			}
		}
		timer.Stop()
		s.commitGroup(ctx, group)
	}
}

// commitGroup commits group and answers every Load of it; see RedshiftStore.
func (s *RedshiftStore) commitGroup(ctx context.Context, group []*pendingLoad) {
	var answers map[*pendingLoad]loadAnswer
	err := s.retry(ctx, func() error {
		var err error
		answers, err = s.tryGroup(ctx, group)
		return err
	})
	if err != nil && len(group) > 1 && !IsTransient(err) && ctx.Err() == nil {
		// Refused data: each request alone, so that only the bad one fails.
		for _, p := range group {
			s.commitGroup(ctx, []*pendingLoad{p})
		}
		return
	}
	if err == nil && s.groupLoads != nil {
		s.groupLoads.Record(ctx, int64(len(group)))
	}
	now := time.Now()
	for _, p := range group {
		a, ok := answers[p]
		if err != nil || !ok {
			a = loadAnswer{err: fmt.Errorf("load %s/%s up to %s: %w", p.req.GetStream(), p.req.GetShardId(), p.req.GetSequenceNumber(), err)}
		}
		s.finish(p, a, now)
	}
}

func (s *RedshiftStore) finish(p *pendingLoad, a loadAnswer, committedAt time.Time) {
	var written commitResult
	if a.resp != nil {
		written = p.result
	}
	s.metrics.recordLoad(p.ctx, a.err, p.b, &written, committedAt)
	if a.err == nil {
		recordRefused(trace.SpanFromContext(p.ctx), written.letters)
	}
	p.reply <- a
}

// stagedRecord is one staged line or tombstone and the index of its request in the group.
type stagedRecord struct {
	req  int
	row  *FactRow
	tomb *Tombstone
}

// write writes r in stagingColumns' order.
func (r stagedRecord) write(w *s3stage.Writer) {
	w.Int(int64(r.req))
	if t := r.tomb; t != nil {
		w.Text(t.Reason)
		w.Null() // player_name
		w.Null() // player_team
		w.Int(t.PlayerID)
		w.Text(t.GameID)
		for range 5 + 21 { // game_date .. home, and the counting stats
			w.Null()
		}
		w.Text(t.EventID)
		w.Int(t.Version)
		w.Timestamp(t.SourceTime)
		w.Timestamp(t.AcceptedAt)
		for _, s := range [...]*string{t.SourceStream, t.SourceShardID, t.SourceSequenceNumber, t.TraceID, t.Producer} {
			w.OptionalText(s)
		}
		return
	}
	row := r.row
	w.Null() // retraction_reason
	w.Text(row.PlayerName)
	w.Text(row.PlayerTeam)
	w.Int(row.PlayerID)
	w.Text(row.GameID)
	w.Date(row.GameDate)
	w.Int(int64(row.GameNumber))
	w.Int(int64(row.Season))
	w.Text(row.Opponent)
	w.Bool(row.Home)
	for _, n := range [...]int32{
		row.PlateAppearances, row.AtBats, row.Runs, row.Hits, row.Singles, row.Doubles, row.Triples, row.HomeRuns, row.RBI,
		row.BaseOnBalls, row.IntentionalWalks, row.StrikeOuts, row.HitByPitch, row.SacBunts, row.SacFlies,
		row.StolenBases, row.CaughtStealing, row.GroundIntoDoublePlay,
		row.TotalBases, row.ExtraBaseHits, row.TimesOnBase,
	} {
		w.Int(int64(n))
	}
	w.Text(row.EventID)
	w.Int(row.Version)
	w.Timestamp(row.SourceTime)
	w.Timestamp(row.AcceptedAt)
	for _, s := range [...]*string{row.SourceStream, row.SourceShardID, row.SourceSequenceNumber, row.TraceID, row.Producer} {
		w.OptionalText(s)
	}
}

func groupRecords(group []*pendingLoad) []stagedRecord {
	var records []stagedRecord
	for i, p := range group {
		for j := range p.b.rows {
			records = append(records, stagedRecord{req: i, row: &p.b.rows[j]})
		}
		for j := range p.b.tombstones {
			records = append(records, stagedRecord{req: i, tomb: &p.b.tombstones[j]})
		}
	}
	return records
}

// tryGroup stages the group's rows and runs its transaction once. It returns the answer
// of every request, or the error that failed the whole group.
func (s *RedshiftStore) tryGroup(ctx context.Context, group []*pendingLoad) (map[*pendingLoad]loadAnswer, error) {
	records := groupRecords(group)
	var staged *s3stage.Staged
	if len(records) > 0 {
		id := fmt.Sprintf("%s-%d", s.cfg.LoaderID, s.groups.Add(1))
		var err error
		staged, err = s.cfg.Stager.Stage(ctx, id, len(records), func(i int, w *s3stage.Writer) error {
			records[i].write(w)
			return nil
		})
		if err != nil {
			return nil, &StagingError{Err: err}
		}
		defer s.removeStaged(ctx, staged)
	}
	var answers map[*pendingLoad]loadAnswer
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
		var err error
		answers, err = s.groupTx(ctx, tx, group, staged)
		return err
	})
	if err != nil {
		return nil, err
	}
	return answers, nil
}

func (s *RedshiftStore) removeStaged(ctx context.Context, staged *s3stage.Staged) {
	if err := s.cfg.Stager.Remove(context.WithoutCancel(ctx), staged); err != nil {
		s.cfg.Logger.WarnContext(ctx, "staged objects not removed: the staging prefix's lifecycle rule will", "manifest", staged.ManifestURI, "error", err)
		if s.staging != nil {
			s.staging.Add(ctx, 1)
		}
	}
}

// groupTx is the transaction of a group (see RedshiftStore).
func (s *RedshiftStore) groupTx(ctx context.Context, tx pgx.Tx, group []*pendingLoad, staged *s3stage.Staged) (map[*pendingLoad]loadAnswer, error) {
	d := s.dialect
	now := time.Now().UTC()
	answers := make(map[*pendingLoad]loadAnswer, len(group))
	if _, err := tx.Exec(ctx, d.lockTables); err != nil {
		return nil, fmt.Errorf("lock tables: %w", err)
	}
	responses := make([]*loadv1.LoadResponse, len(group))
	var refused []int
	for i, p := range group {
		p.result = commitResult{}
		cp := p.b.checkpoint
		tag, err := tx.Exec(ctx, d.advance, cp.Stream, cp.ShardID, cp.Expected, cp.SequenceNumber, cp.ShardEnd, cp.ConsumerID, cp.LeaseToken, now)
		if err != nil {
			return nil, fmt.Errorf("compare-and-set checkpoint of %s/%s: %w", cp.Stream, cp.ShardID, err)
		}
		stored, err := d.ReadCheckpoint(ctx, tx, cp.Stream, cp.ShardID)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() != 1 {
			refused = append(refused, i)
			var refusal error = &CheckpointMismatchError{Expected: cp.Expected, Stored: checkpointProto(stored)}
			if stored.LeaseToken != cp.LeaseToken {
				refusal = &FencedError{Op: "load", LeaseToken: cp.LeaseToken, Stored: checkpointProto(stored)}
			}
			answers[p] = loadAnswer{err: fmt.Errorf("load %s/%s up to %s: %w", cp.Stream, cp.ShardID, cp.SequenceNumber, refusal)}
			continue
		}
		responses[i] = &loadv1.LoadResponse{Checkpoint: checkpointProto(stored)}
		if p.b.gap != nil {
			if err := d.InsertGap(ctx, tx, *p.b.gap); err != nil {
				return nil, err
			}
		}
	}
	if len(refused) == len(group) {
		return answers, nil
	}
	if staged != nil {
		if err := s.mergeStaged(ctx, tx, group, staged, refused, responses, now); err != nil {
			return nil, err
		}
	}
	for i, p := range group {
		resp := responses[i]
		if resp == nil {
			continue
		}
		letters := make([]DeadLetter, 0, len(p.b.letters))
		for _, l := range p.b.letters {
			letters = append(letters, l.storable())
		}
		n, err := s.insertDeadLetters(ctx, tx, dedupeLetters(letters), now)
		if err != nil {
			return nil, err
		}
		resp.DeadLettered = int32(n)
		resp.Unchanged = int32(p.b.received) - resp.Inserted - resp.Updated - int32(p.b.tooLong)
		r := &p.result
		r.inserted, r.updated, r.unchanged = resp.Inserted-r.retractedInserts, resp.Updated-r.retractedUpdates, resp.Unchanged
		r.refused, r.letters = p.b.tooLong, letters
		answers[p] = loadAnswer{resp: resp}
	}
	return answers, nil
}

// mergeStaged copies the staged rows in and writes them (steps 3 to 5 of RedshiftStore),
// counting each request's inserts and updates into responses.
func (s *RedshiftStore) mergeStaged(ctx context.Context, tx pgx.Tx, group []*pendingLoad, staged *s3stage.Staged,
	refused []int, responses []*loadv1.LoadResponse, now time.Time,
) error {
	d := s.dialect
	exec := func(what, sql string, args ...any) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := exec("create staging table", createStagingSQL()); err != nil {
		return err
	}
	if err := s.cfg.CopyFromS3(ctx, tx, copySQL(staged.ManifestURI, s.cfg.CopyRoleARN, s3stage.CopyOptions)); err != nil {
		return fmt.Errorf("copy %s into the staging table: %w", staged.ManifestURI, err)
	}
	var copied int64
	if err := tx.QueryRow(ctx, rsCopyCountSQL).Scan(&copied); err != nil {
		return fmt.Errorf("count copied rows: %w", err)
	}
	if copied != staged.Rows {
		return &CopyCountError{Copied: copied, Staged: staged.Rows, Manifest: staged.ManifestURI}
	}
	if len(refused) > 0 {
		if err := exec("drop the rows of refused requests", deleteRequestsSQL(refused)); err != nil {
			return err
		}
	}
	if err := exec("select effective rows", d.effective); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, rsEffectiveResultSQL)
	if err != nil {
		return fmt.Errorf("read effective rows: %w", err)
	}
	var req int
	var key FactKey
	var tombstone, lineExists, tombExists bool
	_, err = pgx.ForEachRow(rows, []any{&req, &key.PlayerID, &key.GameID, &tombstone, &lineExists, &tombExists}, func() error {
		if req < 0 || req >= len(group) || responses[req] == nil {
			return fmt.Errorf("effective row of request %d, not in the group's committed requests", req)
		}
		resp, r := responses[req], &group[req].result
		switch {
		case !tombstone && !lineExists:
			resp.Inserted++
			r.writes = append(r.writes, FactWrite{Key: key, Inserted: true})
		case !tombstone:
			resp.Updated++
			r.writes = append(r.writes, FactWrite{Key: key})
		case lineExists || tombExists:
			resp.Updated++
			r.retractedUpdates++
		default:
			resp.Inserted++
			r.retractedInserts++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read effective rows: %w", err)
	}
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"select lines", rsLinesSQL, nil},
		{"merge lines", d.mergeFacts, []any{now}},
		{"delete retracted lines", d.deleteRetracted, nil},
		{"delete replaced tombstones", d.deleteReplacedTombstones, nil},
		{"insert tombstones", d.insertTombstones, []any{now}},
		{"select players", rsPlayersSQL, nil},
		{"update players", d.updatePlayers, []any{now}},
		{"insert players", d.insertPlayers, []any{now}},
	}
	for _, step := range steps {
		if err := exec(step.what, step.sql, step.args...); err != nil {
			return err
		}
	}
	for _, sql := range rsDropTempSQL {
		if err := exec("drop temporary table", sql); err != nil {
			return err
		}
	}
	return nil
}

// CopyCountError is a COPY that loaded another number of rows than were staged: the
// group fails (transient: it is staged and copied again).
type CopyCountError struct {
	Copied, Staged int64
	Manifest       string
}

func (e *CopyCountError) Error() string {
	return fmt.Sprintf("COPY from %s loaded %d rows, %d were staged", e.Manifest, e.Copied, e.Staged)
}

// maxDeadLettersPerStatement keeps a dead-letter INSERT far below Redshift's 32,767
// bound arguments; maxDeadLetterStatementBytes keeps it below its 16 MB statement.
const (
	maxDeadLettersPerStatement  = 500
	maxDeadLetterStatementBytes = 6 << 20
)

// insertDeadLetters inserts letters (unique by position and stage) in statements of
// bounded size and returns how many were new.
func (s *RedshiftStore) insertDeadLetters(ctx context.Context, tx pgx.Tx, letters []DeadLetter, now time.Time) (int64, error) {
	var total int64
	for len(letters) > 0 {
		n, size := 0, 0
		for n < len(letters) && n < maxDeadLettersPerStatement && (n == 0 || size+2*len(letters[n].Payload) < maxDeadLetterStatementBytes) {
			size += 2*len(letters[n].Payload) + len(letters[n].Detail) + 1024
			n++
		}
		selects := make([]string, n)
		args := make([]any, 0, n*deadLetterColumnCount)
		for i, l := range letters[:n] {
			selects[i] = numberArguments(rsDeadLetterSelect, i*deadLetterColumnCount+1)
			var player *int64
			if l.Subject.HasPlayer {
				player = &l.Subject.PlayerID
			}
			args = append(args, l.Stage, l.Reason, l.Detail, l.Field, l.EventID, l.EventVersion, l.Stream, l.ShardID, l.SequenceNumber,
				hex.EncodeToString(l.Payload), player, l.Subject.GameID, l.Producer, now)
		}
		sql := fmt.Sprintf(s.dialect.insertDeadLetters, strings.Join(selects, "\nUNION ALL\n"))
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return 0, fmt.Errorf("insert dead letters: %w", err)
		}
		total += tag.RowsAffected()
		letters = letters[n:]
	}
	return total, nil
}

// dedupeLetters drops the letters that repeat an earlier one's position and stage, or its
// event id, version, stage and reason (version known): what the PostgreSQL table's unique
// keys skip within one statement.
func dedupeLetters(letters []DeadLetter) []DeadLetter {
	type position struct{ stream, shard, sequence, stage string }
	type event struct {
		id            string
		version       int64
		stage, reason string
	}
	positions := make(map[position]bool, len(letters))
	events := make(map[event]bool, len(letters))
	out := letters[:0:0]
	for _, l := range letters {
		pos := position{l.Stream, l.ShardID, l.SequenceNumber, l.Stage}
		ev := event{l.EventID, l.EventVersion, l.Stage, l.Reason}
		hasEvent := l.EventID != "" && l.EventVersion != 0
		if positions[pos] || (hasEvent && events[ev]) {
			continue
		}
		positions[pos] = true
		if hasEvent {
			events[ev] = true
		}
		out = append(out, l)
	}
	return out
}
