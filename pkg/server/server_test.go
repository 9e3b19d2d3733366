package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

func newServer(t *testing.T, drain time.Duration) *server.Server {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), "server-test", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	srv, err := server.New(server.Config{
		GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: drain, ShutdownTimeout: 5 * time.Second,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), tel)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func grpcHealth(t *testing.T, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	return resp.GetStatus()
}

func TestReadinessFollowsChecksOnBothPlanes(t *testing.T) {
	srv := newServer(t, 0)
	var broken atomic.Bool
	broken.Store(true)
	srv.AddReadyCheck("dependency", func(context.Context) error {
		if broken.Load() {
			return errors.New("down")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Listening()
	admin := "http://" + srv.AdminAddr()

	if code, _ := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200", code)
	}
	if code, body := get(t, admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a failing check = %d %q, want 503", code, body)
	}
	waitFor(t, func() bool { return grpcHealth(t, srv.GRPCAddr()) == healthpb.HealthCheckResponse_NOT_SERVING })
	broken.Store(false)
	if code, _ := get(t, admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with passing checks = %d, want 200", code)
	}
	waitFor(t, func() bool { return grpcHealth(t, srv.GRPCAddr()) == healthpb.HealthCheckResponse_SERVING })
	if code, body := get(t, admin+"/metrics"); code != http.StatusOK || len(body) == 0 {
		t.Fatalf("/metrics = %d (%d bytes)", code, len(body))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

func TestShutdownDrainsBeforeStoppingWorkers(t *testing.T) {
	const drain = 300 * time.Millisecond
	srv := newServer(t, drain)
	var cancelledAt atomic.Int64
	workerDone := make(chan struct{})
	srv.AddWorker("committer", func(ctx context.Context) error {
		<-ctx.Done()
		cancelledAt.Store(time.Now().UnixNano())
		close(workerDone)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Listening()
	admin := "http://" + srv.AdminAddr()

	signalled := time.Now()
	cancel()
	// While draining, the admin port still answers and says not ready.
	waitFor(t, func() bool { code, _ := get(t, admin+"/readyz"); return code == http.StatusServiceUnavailable })
	<-workerDone
	if got := time.Duration(cancelledAt.Load() - signalled.UnixNano()); got < drain {
		t.Fatalf("worker cancelled %s after the signal, want at least the drain delay %s", got, drain)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestFailingWorkerStopsTheProcess(t *testing.T) {
	srv := newServer(t, 0)
	srv.AddWorker("broken", func(context.Context) error { return errors.New("lost the database") })
	err := srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "lost the database") {
		t.Fatalf("Run = %v, want the worker's error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := server.Config{GRPCAddr: "", AdminAddr: "x", DrainDelay: 5 * time.Second, ShutdownTimeout: time.Second}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "grpc-addr") || !strings.Contains(err.Error(), "shutdown-timeout") {
		t.Fatalf("Validate = %v, want errors about grpc-addr and shutdown-timeout", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
