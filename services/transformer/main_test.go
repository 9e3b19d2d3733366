package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
)

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// The wiring: the service answers on its gRPC port, the admin port reports ready, and a
// cancelled context (what SIGTERM does) shuts it down cleanly.
func TestRun(t *testing.T) {
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	args := []string{"--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--drain-delay", "10ms", "--shutdown-timeout", "5s", "--log-level", "warn"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var cfg config
	go func() { done <- server.Run(ctx, spec, &cfg, setup, args, io.Discard, io.Discard) }()

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 5s: %v, %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := transformv1.NewTransformServiceClient(conn).Transform(t.Context(), &transformv1.TransformRequest{
		Records: []*transformv1.SourceRecord{{
			Position: &streamv1.RecordPosition{Stream: "s", ShardId: "shardId-0", SequenceNumber: "1"},
			Data:     []byte("not an envelope"),
		}},
	})
	if err != nil {
		t.Fatalf("Transform: %v", err)
	}
	if len(resp.Rejections) != 1 || resp.Rejections[0].GetReason() != "envelope_undecodable" {
		t.Errorf("Transform = %v", resp)
	}

	readyz, err := http.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	readyz.Body.Close()
	if readyz.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d", readyz.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != server.ExitOK {
			t.Fatalf("exit code %d, want %d", code, server.ExitOK)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
}
