package grpcapi

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// newTap is a Tap over a real publisher whose stream is never called (only its budget is).
func newTap(t *testing.T, budget int64) (*Tap, *publish.Publisher) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := publish.Config{RetryBudget: time.Second, AttemptTimeout: time.Second, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		MaxInFlightBatches: 4, MaxInFlightBytes: budget, MaxInFlightBytesPerProducer: budget}
	pub, err := publish.New(nil, "s", cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ingest.NewService(pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Tap{Svc: svc, Server: NewServer(svc, logger, nil), ReadTimeout: 200 * time.Millisecond}, pub
}

func TestTapReservesTheLargestMessageAndGivesItBack(t *testing.T) {
	tp, pub := newTap(t, 2*MaxRequestBytes)
	info := &tap.Info{FullMethodName: ingestv1.IngestService_PutStats_FullMethodName, Header: metadata.MD{}}

	// Two streams fit the budget; a third is refused before anything is read.
	ctx1, cancel1 := context.WithCancel(t.Context())
	if _, err := tp.Handle(ctx1, info); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	streamCtx2, err := tp.Handle(ctx2, info)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Handle(t.Context(), info); status.Code(err) != codes.Unavailable {
		t.Fatalf("third stream: %v, want UNAVAILABLE (busy)", err)
	}
	if now, _ := pub.InFlightBytes(); now != 2*MaxRequestBytes {
		t.Fatalf("reserved %d, want two largest messages", now)
	}
	// A stream that ends before its message is read (a reset) gives its share back.
	cancel1()
	waitUntil(t, func() bool { now, _ := pub.InFlightBytes(); return now == MaxRequestBytes })
	// A message that does not arrive within the read timeout is cut off: its context ends.
	select {
	case <-streamCtx2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a late message's stream was not cut off")
	}
	waitUntil(t, func() bool { now, _ := pub.InFlightBytes(); return now == 0 })
	// Health checks reserve nothing.
	if _, err := tp.Handle(t.Context(), &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"}); err != nil {
		t.Fatal(err)
	}
	if now, _ := pub.InFlightBytes(); now != 0 {
		t.Errorf("a health check reserved %d bytes", now)
	}
}

func TestTapStripsAnUntrustedTraceparent(t *testing.T) {
	tp, _ := newTap(t, 2*MaxRequestBytes)
	info := &tap.Info{FullMethodName: ingestv1.IngestService_PutStats_FullMethodName, Header: metadata.Pairs(
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "baggage", "a=1")}
	ctx, err := tp.Handle(t.Context(), info)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("traceparent")) != 0 || md.Get("baggage")[0] != "a=1" {
		t.Errorf("metadata after the tap: %v; want no traceparent and the (small) baggage", md)
	}
	if st := tapStateFrom(ctx); st == nil || !st.remote.IsValid() || st.remote.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the caller's span context is not kept for the link: %+v", st)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
