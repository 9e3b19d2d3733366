package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
)

// Kinesis's read limits per shard (the AWS quotas the consumer must live within): 5
// GetRecords calls and 2 MB (MiB, as AWS counts) per second, at most 10,000 records per
// call.
const (
	shardReadBytesPerSecond = 2 << 20
	shardReadCallsPerSecond = 5
	maxRecordsPerGet        = 10000
	maxRecordsPerPut        = 500
	maxBytesPerPut          = 5 << 20
)

// kinesisLimitRecordsPerSecond is what Kinesis itself lets shards readers take of records
// of avgBytes (data plus partition key, as AWS counts them).
func kinesisLimitRecordsPerSecond(shards int, avgBytes float64) float64 {
	perShard := min(shardReadBytesPerSecond/avgBytes, shardReadCallsPerSecond*maxRecordsPerGet)
	return float64(shards) * perShard
}

// bareKinesis is an SDK client as any program would make one, with enough idle
// connections for the ceiling's concurrency (the default transport keeps two per host).
func bareKinesis(endpoint string, conns int) *kinesis.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = conns
	cfg := aws.Config{
		Region:      kinesalitetest.Region,
		Credentials: credentials.NewStaticCredentialsProvider("kinesalite", "kinesalite", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 10
				o.MaxBackoff = 200 * time.Millisecond
				o.RateLimiter = ratelimit.None
			})
		},
		HTTPClient: &http.Client{Timeout: 60 * time.Second, Transport: transport},
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// streamRead is a whole stream read back with a bare SDK reader.
type streamRead struct {
	Records []types.Record
	Bytes   int64 // data plus partition keys
	Elapsed time.Duration
}

// readStream reads every shard from TRIM_HORIZON to its tip, one reader per shard, each
// calling GetRecords (10,000 records at most) again at once until it is caught up: the
// raw GetRecords rate of this Kinesis, with no limit of its own.
func readStream(ctx context.Context, client *kinesis.Client, stream string) (streamRead, error) {
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return streamRead{}, fmt.Errorf("list shards of %s: %w", stream, err)
	}
	start := time.Now()
	per := make([][]types.Record, len(shards.Shards))
	errs := make([]error, len(shards.Shards))
	var wg sync.WaitGroup
	for i, shard := range shards.Shards {
		wg.Go(func() {
			per[i], errs[i] = readShard(ctx, client, stream, aws.ToString(shard.ShardId))
		})
	}
	wg.Wait()
	res := streamRead{Elapsed: time.Since(start)}
	for i := range per {
		if errs[i] != nil {
			return res, errs[i]
		}
		for _, r := range per[i] {
			res.Bytes += int64(len(r.Data) + len(aws.ToString(r.PartitionKey)))
		}
		res.Records = append(res.Records, per[i]...)
	}
	return res, nil
}

func readShard(ctx context.Context, client *kinesis.Client, stream, shard string) ([]types.Record, error) {
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		return nil, fmt.Errorf("iterator of %s: %w", shard, err)
	}
	var out []types.Record
	iterator := it.ShardIterator
	for iterator != nil {
		got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(maxRecordsPerGet)})
		if err != nil {
			return out, fmt.Errorf("GetRecords on %s after %d records: %w", shard, len(out), err)
		}
		out = append(out, got.Records...)
		if len(got.Records) == 0 && aws.ToInt64(got.MillisBehindLatest) == 0 {
			break
		}
		iterator = got.NextShardIterator
	}
	return out, nil
}

// putAll writes records (their data and partition keys) into stream with PutRecords of
// perCall records (500 at most), from workers concurrent callers, retrying the records a call reports failed
// (throttled): the raw PutRecords rate of this Kinesis. It returns the elapsed time.
func putAll(ctx context.Context, client *kinesis.Client, stream string, records []types.Record, workers, perCall int) (time.Duration, error) {
	batches := make(chan []types.PutRecordsRequestEntry)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for entries := range batches {
				if err := putBatch(ctx, client, stream, entries); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	var batch []types.PutRecordsRequestEntry
	size := 0
	for _, r := range records {
		n := len(r.Data) + len(aws.ToString(r.PartitionKey))
		if len(batch) == perCall || size+n > maxBytesPerPut {
			batches <- batch
			batch, size = nil, 0
		}
		batch = append(batch, types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey})
		size += n
	}
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	return time.Since(start), firstErr
}

func putBatch(ctx context.Context, client *kinesis.Client, stream string, entries []types.PutRecordsRequestEntry) error {
	for attempt := 0; len(entries) > 0; attempt++ {
		if attempt == 50 {
			return fmt.Errorf("PutRecords: %d records still failing after %d attempts", len(entries), attempt)
		}
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return fmt.Errorf("PutRecords of %d records: %w", len(entries), err)
		}
		if aws.ToInt32(out.FailedRecordCount) == 0 {
			return nil
		}
		var failed []types.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				failed = append(failed, entries[i])
			}
		}
		entries = failed
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// factColumns are the columns of the fact table that the loader writes (loaded_at is the
// table's default), read back from the pipeline's warehouse for the PostgreSQL ceiling.
var factColumns = []string{
	"player_id", "game_id", "game_date", "game_number", "season", "opponent", "home",
	"plate_appearances", "at_bats", "runs", "hits", "singles", "doubles", "triples", "home_runs", "rbi",
	"base_on_balls", "intentional_walks", "strike_outs", "hit_by_pitch", "sac_bunts", "sac_flies",
	"stolen_bases", "caught_stealing", "ground_into_double_play",
	"total_bases", "extra_base_hits", "times_on_base",
	"event_id", "version", "source_time", "accepted_at",
	"source_stream", "source_shard_id", "source_sequence_number", "trace_id", "producer",
}

// pgCeiling measures PostgreSQL's raw COPY-then-upsert rate for rows: workers sessions
// (one per shard, as the loader's concurrent loads) each load their share of the rows in
// transactions of batch rows: COPY into a temporary staging table made once per session,
// then INSERT ... ON CONFLICT with the loader's version rule, then TRUNCATE of the
// staging table; commit. The target is a copy of the fact table (same columns, keys,
// constraints and indexes) in a schema of its own, empty at the start, as the pipeline's
// was.
func pgCeiling(ctx context.Context, databaseURL string, rows [][]any, workers, batch int) (time.Duration, error) {
	admin, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return 0, fmt.Errorf("connect for the PostgreSQL ceiling: %w", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `DROP SCHEMA IF EXISTS bench_ceiling CASCADE;
		CREATE SCHEMA bench_ceiling;
		CREATE TABLE bench_ceiling.fact (LIKE boxscore.fact_batting_game INCLUDING ALL)`); err != nil {
		return 0, fmt.Errorf("make the ceiling's table: %w", err)
	}
	set := ""
	for _, c := range factColumns[2:] {
		set += fmt.Sprintf("%s = EXCLUDED.%s, ", c, c)
	}
	cols := ""
	for i, c := range factColumns {
		if i > 0 {
			cols += ", "
		}
		cols += c
	}
	upsert := `INSERT INTO bench_ceiling.fact AS f (` + cols + `) SELECT ` + cols + ` FROM pg_temp.staging
		ORDER BY player_id, game_id
		ON CONFLICT (player_id, game_id) DO UPDATE SET ` + set + `loaded_at = now()
		WHERE (EXCLUDED.version, EXCLUDED.event_id COLLATE "C") > (f.version, f.event_id COLLATE "C")`

	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		c, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			return 0, fmt.Errorf("connect ceiling worker %d: %w", i, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, `CREATE TEMP TABLE staging (LIKE bench_ceiling.fact INCLUDING DEFAULTS)`); err != nil {
			return 0, fmt.Errorf("staging table: %w", err)
		}
		conns[i] = c
	}
	// Rows of one player go to one worker, as one shard holds a player's events.
	shares := make([][][]any, workers)
	for _, r := range rows {
		w := int(r[0].(int64) % int64(workers))
		shares[w] = append(shares[w], r)
	}
	errs := make([]error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			share := shares[i]
			for from := 0; from < len(share) && errs[i] == nil; from += batch {
				errs[i] = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", "staging"}, factColumns,
						pgx.CopyFromRows(share[from:min(from+batch, len(share))])); err != nil {
						return fmt.Errorf("COPY: %w", err)
					}
					if _, err := tx.Exec(ctx, upsert); err != nil {
						return fmt.Errorf("upsert: %w", err)
					}
					if _, err := tx.Exec(ctx, `TRUNCATE pg_temp.staging`); err != nil {
						return fmt.Errorf("truncate staging: %w", err)
					}
					return nil
				})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return elapsed, err
		}
	}
	return elapsed, nil
}

// warehouseRows reads the pipeline's fact rows (the loader's columns) for the ceiling.
// querier is a pool or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func warehouseRows(ctx context.Context, conn querier) ([][]any, error) {
	cols := ""
	for i, c := range factColumns {
		if i > 0 {
			cols += ", "
		}
		cols += c
	}
	rs, err := conn.Query(ctx, `SELECT `+cols+` FROM boxscore.fact_batting_game`)
	if err != nil {
		return nil, fmt.Errorf("read the fact rows: %w", err)
	}
	defer rs.Close()
	var out [][]any
	for rs.Next() {
		v, err := rs.Values()
		if err != nil {
			return nil, fmt.Errorf("read a fact row: %w", err)
		}
		out = append(out, v)
	}
	return out, rs.Err()
}
