package lease

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newPostgresStore migrates a fresh database and returns the store on it.
func newPostgresStore(t *testing.T) (*PostgresStore, *pgxpool.Pool) {
	t.Helper()
	pool := newPool(t)
	if err := Migrate(t.Context(), pool, DefaultSchema, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store, err := NewPostgresStore(pool, DefaultSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	return store, pool
}

// TestStoreContract runs the same conditional semantics against PostgreSQL and the
// in-memory store the simulation uses.
func TestStoreContract(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		store, _ := newPostgresStore(t)
		testStoreContract(t, store)
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		testStoreContract(t, NewMemoryStore())
	})
}

func testStoreContract(t *testing.T, store Store) {
	ctx := t.Context()
	const stream = "batting"
	mustList := func() map[string]Lease {
		t.Helper()
		leases, err := store.List(ctx, stream)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		out := map[string]Lease{}
		for _, l := range leases {
			out[l.ShardID] = l
		}
		return out
	}

	if err := store.Ensure(ctx, stream, []string{"shard-b", "shard-a"}); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if err := store.Ensure(ctx, "other-stream", []string{"shard-a"}); err != nil {
		t.Fatalf("ensure other stream: %v", err)
	}
	leases, err := store.List(ctx, stream)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	want := []Lease{{ShardID: "shard-a"}, {ShardID: "shard-b"}}
	if !slices.Equal(leases, want) {
		t.Fatalf("leases after ensure = %+v, want %+v", leases, want)
	}

	// Take with the observed counter; a stale counter fails.
	counter, ok, err := store.Take(ctx, stream, "shard-a", "worker-1", 0)
	if err != nil || !ok || counter != 1 {
		t.Fatalf("take unowned = (%d, %v, %v), want (1, true, nil)", counter, ok, err)
	}
	if _, ok, err := store.Take(ctx, stream, "shard-a", "worker-2", 0); err != nil || ok {
		t.Fatalf("take with stale counter = (%v, %v), want refused", ok, err)
	}
	if _, ok, err := store.Take(ctx, stream, "shard-missing", "worker-2", 0); err != nil || ok {
		t.Fatalf("take of a missing lease = (%v, %v), want refused", ok, err)
	}

	// Ensure again leaves existing leases alone.
	if err := store.Ensure(ctx, stream, []string{"shard-a", "shard-c"}); err != nil {
		t.Fatalf("ensure again: %v", err)
	}
	if got := mustList()["shard-a"]; got != (Lease{ShardID: "shard-a", Owner: "worker-1", Counter: 1}) {
		t.Fatalf("shard-a after second ensure = %+v", got)
	}
	if got := mustList()["shard-c"]; got != (Lease{ShardID: "shard-c"}) {
		t.Fatalf("shard-c after second ensure = %+v", got)
	}

	// Renew: only the owner, only at its counter.
	if _, ok, err := store.Renew(ctx, stream, "shard-a", "worker-2", 1); err != nil || ok {
		t.Fatalf("renew by a non-owner = (%v, %v), want refused", ok, err)
	}
	counter, ok, err = store.Renew(ctx, stream, "shard-a", "worker-1", 1)
	if err != nil || !ok || counter != 2 {
		t.Fatalf("renew = (%d, %v, %v), want (2, true, nil)", counter, ok, err)
	}
	if _, ok, err := store.Renew(ctx, stream, "shard-a", "worker-1", 1); err != nil || ok {
		t.Fatalf("renew with a stale counter = (%v, %v), want refused", ok, err)
	}

	// Steal: a take at the observed counter fences the old owner off.
	counter, ok, err = store.Take(ctx, stream, "shard-a", "worker-2", 2)
	if err != nil || !ok || counter != 3 {
		t.Fatalf("steal = (%d, %v, %v), want (3, true, nil)", counter, ok, err)
	}
	if _, ok, err := store.Renew(ctx, stream, "shard-a", "worker-1", 2); err != nil || ok {
		t.Fatalf("renew by the former owner = (%v, %v), want refused", ok, err)
	}
	if ok, err := store.Release(ctx, stream, "shard-a", "worker-1", 2); err != nil || ok {
		t.Fatalf("release by the former owner = (%v, %v), want refused", ok, err)
	}
	if ok, err := store.Release(ctx, stream, "shard-a", "worker-2", 2); err != nil || ok {
		t.Fatalf("release with a stale counter = (%v, %v), want refused", ok, err)
	}

	// Release: unowned, counter+1; then nothing the old owner does succeeds.
	if ok, err := store.Release(ctx, stream, "shard-a", "worker-2", 3); err != nil || !ok {
		t.Fatalf("release = (%v, %v), want released", ok, err)
	}
	if got := mustList()["shard-a"]; got != (Lease{ShardID: "shard-a", Counter: 4}) {
		t.Fatalf("shard-a after release = %+v, want unowned at 4", got)
	}
	if _, ok, err := store.Renew(ctx, stream, "shard-a", "worker-2", 3); err != nil || ok {
		t.Fatalf("renew after release = (%v, %v), want refused", ok, err)
	}
	if ok, err := store.Release(ctx, stream, "shard-a", "worker-2", 4); err != nil || ok {
		t.Fatalf("release of an unowned lease = (%v, %v), want refused", ok, err)
	}

	// Raise: only the owner at its counter; the counter jumps above the given token (a
	// token the warehouse holds from before a lease store reset), or grows by one when it
	// is already above; after it, the old counter is stale for every operation.
	counter, ok, err = store.Take(ctx, stream, "shard-c", "worker-3", 0)
	if err != nil || !ok || counter != 1 {
		t.Fatalf("take shard-c = (%d, %v, %v), want (1, true, nil)", counter, ok, err)
	}
	if _, ok, err := store.Raise(ctx, stream, "shard-c", "worker-2", 1, 40); err != nil || ok {
		t.Fatalf("raise by a non-owner = (%v, %v), want refused", ok, err)
	}
	if _, ok, err := store.Raise(ctx, stream, "shard-c", "worker-3", 0, 40); err != nil || ok {
		t.Fatalf("raise with a stale counter = (%v, %v), want refused", ok, err)
	}
	counter, ok, err = store.Raise(ctx, stream, "shard-c", "worker-3", 1, 40)
	if err != nil || !ok || counter != 41 {
		t.Fatalf("raise above 40 = (%d, %v, %v), want (41, true, nil)", counter, ok, err)
	}
	if got := mustList()["shard-c"]; got != (Lease{ShardID: "shard-c", Owner: "worker-3", Counter: 41}) {
		t.Fatalf("shard-c after raise = %+v, want worker-3 at 41", got)
	}
	counter, ok, err = store.Raise(ctx, stream, "shard-c", "worker-3", 41, 7)
	if err != nil || !ok || counter != 42 {
		t.Fatalf("raise above a lower token = (%d, %v, %v), want (42, true, nil): the counter never goes back", counter, ok, err)
	}
	if _, ok, err := store.Renew(ctx, stream, "shard-c", "worker-3", 1); err != nil || ok {
		t.Fatalf("renew at the counter before the raise = (%v, %v), want refused", ok, err)
	}
	if _, ok, err := store.Take(ctx, stream, "shard-c", "worker-2", 1); err != nil || ok {
		t.Fatalf("take at the counter before the raise = (%v, %v), want refused", ok, err)
	}
	if counter, ok, err := store.Take(ctx, stream, "shard-c", "worker-2", 42); err != nil || !ok || counter != 43 {
		t.Fatalf("take after the raise = (%d, %v, %v), want (43, true, nil): the next token is above the raised one", counter, ok, err)
	}
	if _, ok, err := store.Raise(ctx, stream, "shard-c", "worker-3", 42, 100); err != nil || ok {
		t.Fatalf("raise by the former owner = (%v, %v), want refused", ok, err)
	}
	if _, _, err := store.Raise(ctx, stream, "shard-c", "", 43, 100); err == nil {
		t.Fatal("raise with an empty owner succeeded")
	}

	// The other stream's lease was never touched.
	others, err := store.List(ctx, "other-stream")
	if err != nil {
		t.Fatalf("list other stream: %v", err)
	}
	if !slices.Equal(others, []Lease{{ShardID: "shard-a"}}) {
		t.Fatalf("other stream = %+v", others)
	}

	// An empty owner is an error, not a silent unowned lease.
	if _, _, err := store.Take(ctx, stream, "shard-b", "", 0); err == nil {
		t.Fatal("take with an empty owner succeeded")
	}

	// Many takes racing with the same observed counter: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for i := range 8 {
		wg.Go(func() {
			worker := fmt.Sprintf("racer-%d", i)
			_, ok, err := store.Take(context.WithoutCancel(ctx), stream, "shard-b", worker, 0)
			if err != nil {
				t.Errorf("racing take: %v", err)
			}
			if ok {
				wins <- worker
			}
		})
	}
	wg.Wait()
	close(wins)
	var winners []string
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("racing takes: winners %v, want exactly one", winners)
	}
	if got := mustList()["shard-b"]; got.Owner != winners[0] || got.Counter != 1 {
		t.Fatalf("shard-b after the race = %+v, want owned by %s at 1", got, winners[0])
	}
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	const schema = "lease_custom"

	// Replicas starting together: all succeed, the migration is recorded once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := Migrate(t.Context(), pool, schema, nil); err != nil {
				t.Errorf("concurrent migrate: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := Migrate(t.Context(), pool, schema, nil); err != nil {
		t.Fatalf("migrate again: %v", err)
	}

	rows, err := pool.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, schema)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("scan: %v", err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	if want := []string{"goose_db_version", "shard_lease"}; !slices.Equal(tables, want) {
		t.Fatalf("tables in %s = %v, want %v", schema, tables, want)
	}
	var applied int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+schema+`.goose_db_version WHERE version_id = 1 AND is_applied`).Scan(&applied); err != nil {
		t.Fatalf("read goose versions: %v", err)
	}
	if applied != 1 {
		t.Fatalf("version 1 recorded %d times, want once", applied)
	}
	var publicTables int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&publicTables); err != nil {
		t.Fatalf("count public tables: %v", err)
	}
	if publicTables != 0 {
		t.Fatalf("%d tables created in public, want none", publicTables)
	}

	// The store works in the custom schema.
	store, err := NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	if err := store.Ensure(t.Context(), "s", []string{"shard-1"}); err != nil {
		t.Fatalf("ensure in custom schema: %v", err)
	}
}

func TestInvalidSchemaRejected(t *testing.T) {
	for _, schema := range []string{"", "Lease", "lease; DROP TABLE x", "1lease"} {
		if _, err := NewPostgresStore(nil, schema); err == nil {
			t.Errorf("NewPostgresStore(%q) accepted the schema", schema)
		}
		if err := Migrate(t.Context(), nil, schema, nil); err == nil {
			t.Errorf("Migrate(%q) accepted the schema", schema)
		}
	}
}

// TestStoreTakeBackUnderSameIdentity: a process restarted under its predecessor's id takes
// the lease it finds in its name with the counter it read — a new, greater counter (its
// fencing token) — and the predecessor, were it still alive, can renew or release it no
// more: the counter it knows is gone, whatever the owner column says.
func TestStoreTakeBackUnderSameIdentity(t *testing.T) {
	for name, store := range map[string]func(t *testing.T) Store{
		"postgres": func(t *testing.T) Store { s, _ := newPostgresStore(t); return s },
		"memory":   func(*testing.T) Store { return NewMemoryStore() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := store(t)
			ctx := t.Context()
			if err := s.Ensure(ctx, "batting", []string{"shard-a"}); err != nil {
				t.Fatal(err)
			}
			old, ok, err := s.Take(ctx, "batting", "shard-a", "pod-0", 0)
			if err != nil || !ok {
				t.Fatalf("take = (%v, %v)", ok, err)
			}
			if old, ok, err = s.Renew(ctx, "batting", "shard-a", "pod-0", old); err != nil || !ok {
				t.Fatalf("renew = (%v, %v)", ok, err)
			}
			token, ok, err := s.Take(ctx, "batting", "shard-a", "pod-0", old)
			if err != nil || !ok || token <= old {
				t.Fatalf("take back under the same id = (%d, %v, %v), want a counter above %d", token, ok, err, old)
			}
			if _, ok, err := s.Renew(ctx, "batting", "shard-a", "pod-0", old); err != nil || ok {
				t.Errorf("the predecessor's renewal = (%v, %v), want refused", ok, err)
			}
			if ok, err := s.Release(ctx, "batting", "shard-a", "pod-0", old); err != nil || ok {
				t.Errorf("the predecessor's release = (%v, %v), want refused", ok, err)
			}
		})
	}
}
