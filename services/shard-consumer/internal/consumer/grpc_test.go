package consumer_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

// inProcess hands the consumer the fakes themselves.
func inProcess(_ *testing.T, tr transformv1.TransformServiceClient, l loadv1.LoadServiceClient) (transformv1.TransformServiceClient, loadv1.LoadServiceClient) {
	return tr, l
}

// overGRPC serves the fakes on a loopback port and hands the consumer its production
// clients of them (consumer.GRPCClients): every message crosses the wire as it does
// between the services.
func overGRPC(t *testing.T, tr transformv1.TransformServiceClient, l loadv1.LoadServiceClient) (transformv1.TransformServiceClient, loadv1.LoadServiceClient) {
	return overGRPCBench(t, tr, l)
}

func overGRPCBench(t testing.TB, tr transformv1.TransformServiceClient, l loadv1.LoadServiceClient) (transformv1.TransformServiceClient, loadv1.LoadServiceClient) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	transformv1.RegisterTransformServiceServer(srv, transformServer{c: tr})
	loadv1.RegisterLoadServiceServer(srv, loadServer{c: l})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return consumer.GRPCClients(conn, conn)
}

type transformServer struct {
	transformv1.UnimplementedTransformServiceServer
	c transformv1.TransformServiceClient
}

func (s transformServer) Transform(ctx context.Context, req *transformv1.TransformRequest) (*transformv1.TransformResponse, error) {
	return s.c.Transform(ctx, req)
}

type loadServer struct {
	loadv1.UnimplementedLoadServiceServer
	c loadv1.LoadServiceClient
}

func (s loadServer) Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	return s.c.Load(ctx, req)
}

func (s loadServer) GetCheckpoint(ctx context.Context, req *loadv1.GetCheckpointRequest) (*loadv1.GetCheckpointResponse, error) {
	return s.c.GetCheckpoint(ctx, req)
}

func (s loadServer) ClaimShard(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error) {
	return s.c.ClaimShard(ctx, req)
}
