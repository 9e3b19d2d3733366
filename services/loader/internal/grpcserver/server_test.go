package grpcserver_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/grpcserver"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

const (
	testSchema = "loader"
	testStream = "boxscore-events"
	testShard  = "shardId-000000000000"
	testToken  = 1
	testOwner  = "consumer-test"
)

// serve runs a real gRPC server with the LoadService over store on an in-memory listener
// and returns a client of it.
func serve(t *testing.T, store grpcserver.Warehouse) loadv1.LoadServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	loadv1.RegisterLoadServiceServer(srv, grpcserver.New(store, nil))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("serve: %v", err)
		}
	})

	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return loadv1.NewLoadServiceClient(conn)
}

func newStore(t *testing.T) *warehouse.Store {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Apply(t.Context(), pool, testSchema, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store, err := warehouse.NewStore(pool, testSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	return store
}

func row(playerID int64, seq string) *warehousev1.BattingGameRow {
	return &warehousev1.BattingGameRow{
		EventId:  "evt-" + seq,
		Version:  1,
		Player:   &statsv1.Player{MlbId: playerID, Name: "Mookie Betts", Team: "LAD"},
		GameId:   "745001",
		GameDate: "2024-03-28",
		Season:   2024,
		Opponent: "STL",
		Home:     true,
		AtBats:   4, Hits: 2, Singles: 1, HomeRuns: 1, TotalBases: 5, ExtraBaseHits: 1, TimesOnBase: 2, PlateAppearances: 4,
		Position: &streamv1.RecordPosition{Stream: testStream, ShardId: testShard, SequenceNumber: seq},
	}
}

func request(expected, seq string, rows ...*warehousev1.BattingGameRow) *loadv1.LoadRequest {
	return &loadv1.LoadRequest{
		Stream: testStream, ShardId: testShard,
		ExpectedSequenceNumber: expected, SequenceNumber: seq,
		Rows: rows, ConsumerId: testOwner, LeaseToken: testToken,
	}
}

// claim claims testShard through client, as a consumer does before its first load.
func claim(t *testing.T, client loadv1.LoadServiceClient, token int64, owner string) *loadv1.Checkpoint {
	t.Helper()
	resp, err := client.ClaimShard(t.Context(), &loadv1.ClaimShardRequest{
		Stream: testStream, ShardId: testShard, LeaseToken: token, Owner: owner,
	})
	if err != nil {
		t.Fatalf("ClaimShard(%d, %s): %v", token, owner, err)
	}
	return resp.GetCheckpoint()
}

// storedCheckpointDetail returns the loadv1.Checkpoint detail of a FAILED_PRECONDITION.
func storedCheckpointDetail(t *testing.T, err error) *loadv1.Checkpoint {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("code %s (%v), want FailedPrecondition", st.Code(), err)
	}
	for _, detail := range st.Details() {
		if cp, ok := detail.(*loadv1.Checkpoint); ok {
			return cp
		}
	}
	t.Fatalf("FailedPrecondition details = %v, want a loadv1.Checkpoint", st.Details())
	return nil
}

func TestLoadAndGetCheckpoint(t *testing.T) {
	t.Parallel()
	client := serve(t, newStore(t))
	claim(t, client, testToken, testOwner)

	resp, err := client.Load(t.Context(), request("", "100", row(605141, "100")))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if resp.GetInserted() != 1 || resp.GetCheckpoint().GetSequenceNumber() != "100" ||
		resp.GetCheckpoint().GetLeaseToken() != testToken || resp.GetCheckpoint().GetOwner() != testOwner {
		t.Errorf("Load response = %v, want 1 inserted and checkpoint 100 under token %d of %s", resp, testToken, testOwner)
	}
	got, err := client.GetCheckpoint(t.Context(), &loadv1.GetCheckpointRequest{Stream: testStream, ShardId: testShard})
	if err != nil {
		t.Fatalf("GetCheckpoint: %v", err)
	}
	if !proto.Equal(got.GetCheckpoint(), resp.GetCheckpoint()) {
		t.Errorf("GetCheckpoint = %v, want the checkpoint Load returned: %v", got.GetCheckpoint(), resp.GetCheckpoint())
	}

	none, err := client.GetCheckpoint(t.Context(), &loadv1.GetCheckpointRequest{Stream: testStream, ShardId: "shardId-000000000042"})
	if err != nil {
		t.Fatalf("GetCheckpoint of an uncommitted shard: %v", err)
	}
	if none.GetCheckpoint().GetSequenceNumber() != "" || none.GetCheckpoint().GetShardId() != "shardId-000000000042" {
		t.Errorf("GetCheckpoint of an uncommitted shard = %v, want an empty sequence number", none.GetCheckpoint())
	}
}

func TestCheckpointMismatchIsFailedPreconditionWithStoredCheckpoint(t *testing.T) {
	t.Parallel()
	client := serve(t, newStore(t))
	claim(t, client, testToken, testOwner)
	first, err := client.Load(t.Context(), request("", "100", row(605141, "100")))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	_, err = client.Load(t.Context(), request("", "100", row(605141, "100")))
	stored := storedCheckpointDetail(t, err)
	if !proto.Equal(stored, first.GetCheckpoint()) {
		t.Errorf("checkpoint detail = %v, want the stored one %v", stored, first.GetCheckpoint())
	}
}

func TestInvalidRequestIsInvalidArgumentWithFieldViolations(t *testing.T) {
	t.Parallel()
	client := serve(t, newStore(t))

	bad := row(605141, "100")
	bad.Hits = -2
	_, err := client.Load(t.Context(), request("", "", bad))
	assertBadRequest(t, err, "sequence_number", "rows[0].hits")

	_, err = client.GetCheckpoint(t.Context(), &loadv1.GetCheckpointRequest{ShardId: testShard})
	assertBadRequest(t, err, "stream")

	untokened := request("", "100", row(605141, "100"))
	untokened.LeaseToken = 0
	_, err = client.Load(t.Context(), untokened)
	assertBadRequest(t, err, "lease_token")

	_, err = client.ClaimShard(t.Context(), &loadv1.ClaimShardRequest{Stream: testStream, ShardId: testShard, LeaseToken: -1})
	assertBadRequest(t, err, "lease_token", "owner")
}

func assertBadRequest(t *testing.T, err error, fields ...string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %s (%v), want InvalidArgument", st.Code(), err)
	}
	got := map[string]bool{}
	for _, detail := range st.Details() {
		if br, ok := detail.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetDescription() == "" {
					t.Errorf("violation of %s has no description", v.GetField())
				}
				got[v.GetField()] = true
			}
		}
	}
	for _, field := range fields {
		if !got[field] {
			t.Errorf("BadRequest violations %v, want one for %s", got, field)
		}
	}
}

func TestRejectionWithUnstorableTextIsStored(t *testing.T) {
	t.Parallel()
	client := serve(t, newStore(t))
	claim(t, client, testToken, testOwner)
	// PostgreSQL text cannot hold NUL (SQLSTATE 22021): the loader makes the rejection's text
	// storable rather than refusing the batch, which would stall the shard.
	req := request("", "100", row(605141, "100"))
	req.Rejections = []*warehousev1.Rejection{{
		Position: &streamv1.RecordPosition{Stream: testStream, ShardId: testShard, SequenceNumber: "99"},
		Stage:    "validate", Reason: "bad\x00reason", EventId: "evt-\x00", Detail: "NY\x00Y",
	}}
	resp, err := client.Load(t.Context(), req)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if resp.GetInserted() != 1 || resp.GetDeadLettered() != 1 {
		t.Errorf("inserted %d, dead-lettered %d; want 1 and 1", resp.GetInserted(), resp.GetDeadLettered())
	}
}

func TestRowRefusedByDatabaseIsDeadLettered(t *testing.T) {
	t.Parallel()
	client := serve(t, newStore(t))
	claim(t, client, testToken, testOwner)
	bad := row(605141, "100")
	bad.GameId = "745\x00001" // PostgreSQL text cannot hold NUL: SQLSTATE 22021
	resp, err := client.Load(t.Context(), request("", "101", bad, row(605142, "101")))
	if err != nil {
		t.Fatalf("Load with a row the database refuses: %v, want it dead-lettered", err)
	}
	if resp.GetInserted() != 1 || resp.GetDeadLettered() != 1 || resp.GetUnchanged() != 0 ||
		resp.GetCheckpoint().GetSequenceNumber() != "101" {
		t.Errorf("Load response = %v, want 1 inserted, 1 dead-lettered, checkpoint 101", resp)
	}
}

func TestLeaseFencingOverGRPC(t *testing.T) {
	t.Parallel()
	client := serve(t, newStore(t))

	// Claiming a shard without a row creates it, with nothing committed.
	cp := claim(t, client, 5, "consumer-a")
	if cp.GetSequenceNumber() != "" || cp.GetLeaseToken() != 5 || cp.GetOwner() != "consumer-a" || cp.GetShardId() != testShard {
		t.Fatalf("claim = %v, want an empty checkpoint under token 5 of consumer-a", cp)
	}
	first := request("", "100", row(605141, "100"))
	first.LeaseToken = 5
	if _, err := client.Load(t.Context(), first); err != nil {
		t.Fatalf("Load under token 5: %v", err)
	}
	cp = claim(t, client, 6, "consumer-b")
	if cp.GetSequenceNumber() != "100" || cp.GetLeaseToken() != 6 || cp.GetOwner() != "consumer-b" {
		t.Errorf("takeover claim = %v, want 100 under token 6 of consumer-b", cp)
	}

	// The former owner's next batch: refused, with the new lease in the detail.
	stale := request("100", "200", row(605142, "200"))
	stale.LeaseToken = 5
	_, err := client.Load(t.Context(), stale)
	stored := storedCheckpointDetail(t, err)
	if stored.GetLeaseToken() != 6 || stored.GetOwner() != "consumer-b" || stored.GetSequenceNumber() != "100" {
		t.Errorf("fenced load detail = %v, want 100 under token 6 of consumer-b", stored)
	}
	got, err := client.GetCheckpoint(t.Context(), &loadv1.GetCheckpointRequest{Stream: testStream, ShardId: testShard})
	if err != nil {
		t.Fatalf("GetCheckpoint: %v", err)
	}
	if got.GetCheckpoint().GetSequenceNumber() != "100" || got.GetCheckpoint().GetLeaseToken() != 6 ||
		got.GetCheckpoint().GetOwner() != "consumer-b" {
		t.Errorf("GetCheckpoint after the fenced load = %v, want 100 under token 6 of consumer-b", got.GetCheckpoint())
	}

	// An older claim is refused with the stored lease; the current one retried succeeds.
	_, err = client.ClaimShard(t.Context(), &loadv1.ClaimShardRequest{Stream: testStream, ShardId: testShard, LeaseToken: 4, Owner: "consumer-a"})
	if stored := storedCheckpointDetail(t, err); stored.GetLeaseToken() != 6 {
		t.Errorf("refused claim detail = %v, want token 6", stored)
	}
	claim(t, client, 6, "consumer-b")
	resumed := request("100", "200", row(605142, "200"))
	resumed.LeaseToken = 6
	resp, err := client.Load(t.Context(), resumed)
	if err != nil {
		t.Fatalf("Load under the new token: %v", err)
	}
	if resp.GetInserted() != 1 || resp.GetCheckpoint().GetSequenceNumber() != "200" {
		t.Errorf("Load under the new token = %v, want 1 inserted and checkpoint 200", resp)
	}
}

func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	store, err := warehouse.NewStore(pool, testSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	client := serve(t, store)

	_, err = client.Load(t.Context(), request("", "100", row(605141, "100")))
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("Load: code %s (%v), want Unavailable", code, err)
	}
	_, err = client.GetCheckpoint(t.Context(), &loadv1.GetCheckpointRequest{Stream: testStream, ShardId: testShard})
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("GetCheckpoint: code %s (%v), want Unavailable", code, err)
	}
	_, err = client.ClaimShard(t.Context(), &loadv1.ClaimShardRequest{Stream: testStream, ShardId: testShard, LeaseToken: 1, Owner: testOwner})
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("ClaimShard: code %s (%v), want Unavailable", code, err)
	}
}
