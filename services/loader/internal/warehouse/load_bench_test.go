package warehouse_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// benchStore is newEnv for a benchmark: a migrated database of its own, one connection
// (as a loader's shard reuses one session), testShard claimed. It also returns the process
// id of that connection's server backend, whose CPU the benchmark reports.
func benchStore(b *testing.B) (*warehouse.Store, int) {
	b.Helper()
	config, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatalf("parse config: %v", err)
	}
	config.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(b.Context(), config)
	if err != nil {
		b.Fatalf("pool: %v", err)
	}
	b.Cleanup(pool.Close)
	if err := migrations.Apply(b.Context(), pool, testSchema, nil); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	store, err := warehouse.NewStore(pool, testSchema)
	if err != nil {
		b.Fatalf("store: %v", err)
	}
	if _, err := store.ClaimShard(b.Context(), claimRequest(testShard, testLeaseToken, testOwner)); err != nil {
		b.Fatalf("claim: %v", err)
	}
	var backend int
	if err := pool.QueryRow(b.Context(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		b.Fatalf("backend pid: %v", err)
	}
	return store, backend
}

// clockTicksPerSecond is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on
// Linux).
const clockTicksPerSecond = 100

// processCPU returns the user + system CPU time /proc/<pid>/stat reports for pid.
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read backend stat: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count the fields
	// after its closing parenthesis, where utime and stime are the 12th and 13th.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, fmt.Errorf("backend stat: %d fields after the command", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("backend stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}

// ownCPU returns this process's user + system CPU time.
func ownCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// BenchmarkLoad500 commits batches of 500 new lines (the consumer's default batch) of 250
// players, each batch moving the checkpoint: the whole Load, from validation to commit, on
// PostgreSQL. rows/s is the figure to compare with the pipeline's drain rate;
// loader-cpu-s/10k-rows is this process's CPU during the Load calls (the GC's included),
// pg-cpu-s/10k-rows the CPU of the connection's server backend over the whole run. Every
// game is on the same day, so dim_player changes only in the first batch.
func BenchmarkLoad500(b *testing.B) { benchmarkLoad500(b, loadSameDay) }

// BenchmarkLoad500NewDays is BenchmarkLoad500 with each batch's games a day after the
// previous batch's: every batch changes every one of its players in dim_player.
func BenchmarkLoad500NewDays(b *testing.B) { benchmarkLoad500(b, loadNewDays) }

// BenchmarkLoad500Updates is BenchmarkLoad500 with every batch the same 500 (player, game)
// keys at a higher version than the batch before: every line after the first batch is an
// update (the plain INSERT the pipelined path tries first is refused, then the upsert runs).
func BenchmarkLoad500Updates(b *testing.B) { benchmarkLoad500(b, loadUpdates) }

// load500Kind is what the batches of benchmarkLoad500 hold.
type load500Kind int

const (
	loadSameDay load500Kind = iota // new games, all on one day
	loadNewDays                    // new games, each batch a day after the previous one
	loadUpdates                    // the same games each batch, at a higher version
)

func benchmarkLoad500(b *testing.B, kind load500Kind) {
	const n = 500
	store, backend := benchStore(b)
	pgBefore, err := processCPU(backend)
	if err != nil {
		b.Fatal(err)
	}
	var loaderCPU time.Duration
	var expected string
	var batch int
	b.ReportAllocs()
	for b.Loop() {
		rows := make([]*warehousev1.BattingGameRow, n)
		for i := range rows {
			seq := strconv.Itoa(batch*n + i + 1)
			switch kind {
			case loadUpdates:
				rows[i] = newRow(int64(i%250+1), "g0-"+strconv.Itoa(i/250), int64(batch+1), "evt-"+seq, seq)
			default:
				rows[i] = newRow(int64(i%250+1), "g"+strconv.Itoa(batch)+"-"+strconv.Itoa(i/250), 1, "evt-"+seq, seq)
			}
			if kind == loadNewDays {
				rows[i].GameDate = time.Date(2000, 1, 1+batch, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			}
		}
		next := strconv.Itoa((batch + 1) * n)
		req := &loadv1.LoadRequest{
			Stream: testStream, ShardId: testShard, ExpectedSequenceNumber: expected, SequenceNumber: next,
			Rows: rows, ConsumerId: testOwner, LeaseToken: testLeaseToken,
		}
		start := ownCPU()
		resp, err := store.Load(b.Context(), req)
		loaderCPU += ownCPU() - start
		if err != nil {
			b.Fatalf("Load: %v", err)
		}
		if written := resp.GetInserted() + resp.GetUpdated(); written != n || (kind == loadUpdates && batch > 0 && resp.GetUpdated() != n) {
			b.Fatalf("inserted %d, updated %d of %d", resp.GetInserted(), resp.GetUpdated(), n)
		}
		expected = next
		batch++
	}
	pgAfter, err := processCPU(backend)
	if err != nil {
		b.Fatal(err)
	}
	rows := float64(n) * float64(b.N)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(loaderCPU.Seconds()/rows*10_000, "loader-cpu-s/10k-rows")
	b.ReportMetric((pgAfter-pgBefore).Seconds()/rows*10_000, "pg-cpu-s/10k-rows")
}
