package server_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

// countingHealth answers health checks and counts them, so a test sees which server a call
// reached.
type countingHealth struct {
	healthpb.UnimplementedHealthServer
	mu    sync.Mutex
	calls int
	peers map[string]bool // client ports seen: one per connection
	panic bool
}

func (h *countingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if h.panic {
		panic("a handler bug")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if p, ok := peer.FromContext(ctx); ok {
		if h.peers == nil {
			h.peers = map[string]bool{}
		}
		h.peers[p.Addr.String()] = true
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *countingHealth) counts() (calls, conns int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls, len(h.peers)
}

// startBackend serves a countingHealth with the shared server options (keepalive, message
// limits, panic recovery) and returns its address.
func startBackend(t *testing.T, cfg server.Config, h *countingHealth) string {
	t.Helper()
	cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The shared server registers the standard health service: a bare grpc.Server with
	// the same options would not, so a test service under another name is registered.
	desc := healthpb.Health_ServiceDesc
	desc.ServiceName = "boxscore.test.Counting"
	srv.GRPC().RegisterService(&desc, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Listening()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("backend stopped with %v", err)
		}
	})
	return srv.GRPCAddr()
}

func countingCall(ctx context.Context, conn *grpc.ClientConn) error {
	return conn.Invoke(ctx, "/boxscore.test.Counting/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
}

// Dial balances round robin over every address the resolver returns: with gRPC's default
// (pick_first) every call would reach the first backend, and replicas that an autoscaler
// adds behind a headless Service would get nothing.
func TestDialSpreadsCallsOverEveryResolvedAddress(t *testing.T) {
	backends := []*countingHealth{{}, {}, {}}
	var addrs []resolver.Address
	for _, b := range backends {
		addrs = append(addrs, resolver.Address{Addr: startBackend(t, server.Config{DrainDelay: 0}, b)})
	}
	r := manual.NewBuilderWithScheme("boxscoretest")
	r.InitialState(resolver.State{Addresses: addrs})
	conn, err := server.Dial(r.Scheme()+":///backends", grpc.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 30 {
		if err := countingCall(t.Context(), conn); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	for i, b := range backends {
		if calls, _ := b.counts(); calls == 0 {
			t.Errorf("backend %d got no call; calls spread as %v", i, callCounts(backends))
		}
	}
}

func callCounts(backends []*countingHealth) []int {
	var out []int
	for _, b := range backends {
		c, _ := b.counts()
		out = append(out, c)
	}
	return out
}

// A server closes connections older than MaxConnectionAge gracefully: the client
// reconnects (and, through DNS, would find new replicas) without a failed call.
func TestConnectionsAgeOutWithoutFailingCalls(t *testing.T) {
	backend := &countingHealth{}
	addr := startBackend(t, server.Config{MaxConnectionAge: time.Second, ShutdownTimeout: 5 * time.Second}, backend)
	conn, err := server.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Call until the server has seen a second connection from this client: the first one
	// aged out. Bounded by count, not by a timing assertion.
	for i := 0; ; i++ {
		if err := countingCall(t.Context(), conn); err != nil {
			t.Fatalf("call %d failed across a connection age-out: %v", i, err)
		}
		if _, conns := backend.counts(); conns >= 2 {
			break
		}
		if i == 2000 {
			t.Fatal("the connection never aged out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAHandlerPanicBecomesInternalAndTheServerLives(t *testing.T) {
	backend := &countingHealth{panic: true}
	addr := startBackend(t, server.Config{}, backend)
	conn, err := server.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 2 { // the second call proves the process survived the first
		if err := countingCall(t.Context(), conn); status.Code(err) != codes.Internal {
			t.Fatalf("call to a panicking handler: %v, want INTERNAL", err)
		}
	}
}
