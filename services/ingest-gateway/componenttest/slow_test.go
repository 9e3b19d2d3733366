package componenttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/grpcapi"
)

// trickle opens a connection, sends the headers of a POST (a 1 MiB Content-Length, or a
// chunked body) and then one byte every 100 ms until the server answers, and returns the
// answer's status (0 when the connection ended without one).
func trickle(ctx context.Context, addr, key string, chunked bool) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	length := "Content-Length: 1048576\r\n"
	if chunked {
		length = "Transfer-Encoding: chunked\r\n"
	}
	if _, err := fmt.Fprintf(conn, "POST /v1/stats HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\n%s\r\n", key, length); err != nil {
		return 0
	}
	answered := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- 0
			return
		}
		_ = resp.Body.Close()
		answered <- resp.StatusCode
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case code := <-answered:
			return code
		case <-ctx.Done():
			return 0
		case <-tick.C:
			piece := " "
			if chunked {
				piece = "1\r\n \r\n"
			}
			_, _ = conn.Write([]byte(piece)) // a write error shows as the answer or its absence
		}
	}
}

// Slow uploads hold at most their producer's share of the in-flight budget (the whole
// Content-Length, or what a chunked body sent so far) and are cut off after the body read
// timeout with 408, giving it back; another producer keeps getting 202s meanwhile.
//
// The bound stated: with 30 slow uploads running, every request of the normal client is
// answered 202 within 5 s (on an idle machine, tens of milliseconds).
func TestSlowUploadsDoNotStarveOtherProducers(t *testing.T) {
	slowKey, demoKey := apikey.Generate(), apikey.Generate()
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	keysPath := t.TempDir() + "/keys.yaml"
	writeKeys(t, keysPath,
		apikey.Entry{Producer: "slow", SHA256: apikey.Hash(slowKey), Scopes: []string{apikey.ScopeIngest}},
		apikey.Entry{Producer: "demo", SHA256: apikey.Hash(demoKey), Scopes: []string{apikey.ScopeIngest}})
	keys, err := auth.NewKeyStore(keysPath, discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := publishConfig()
	cfg.MaxInFlightBytes = 16 << 20 // 30 slow 1 MiB uploads would take it all without a per-producer share (8 MiB)
	const bodyTimeout = 2 * time.Second
	g := startGatewayOpts(t, kin.Endpoint, name, cfg, gatewayOptions{auth: auth.New(keys, nil), bodyTimeout: bodyTimeout})
	g.kinesis = kin
	u, err := url.Parse(g.httpURL)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const slow = 30
	statuses := make(chan int, slow)
	var wg sync.WaitGroup
	for i := range slow {
		wg.Go(func() { statuses <- trickle(ctx, u.Host, slowKey, i%3 == 0) })
	}
	// Let them connect and take what they can: at least 7 MiB of their 8 MiB share (chunked
	// uploads hold 64 KiB each).
	waitFor(t, func() bool { now, _ := g.publisher.InFlightBytes(); return now >= 7<<20 })

	const normal = 10
	var slowest time.Duration
	for i := range normal {
		start := time.Now()
		r := g.postAs(t, "Bearer "+demoKey, []*statsv1.StatEvent{testevents.Valid(800000+int64(i), i)})
		took := time.Since(start)
		slowest = max(slowest, took)
		if r.status != http.StatusAccepted {
			t.Fatalf("normal request %d during slow uploads: %d %s", i, r.status, r.body)
		}
		if took > 5*time.Second {
			t.Errorf("normal request %d took %s, over the 5 s bound", i, took)
		}
		time.Sleep(bodyTimeout / 5) // spread over the slow uploads' whole life
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	t.Logf("slow uploads answered %v; slowest normal request %s", counts, slowest)
	// The uploads within the share (at least 7 of 1 MiB) were cut off after the timeout;
	// the rest were refused busy before their body was read.
	if counts[http.StatusRequestTimeout] < 7 || counts[http.StatusRequestTimeout]+counts[http.StatusServiceUnavailable] != slow {
		t.Errorf("slow uploads answered %v, want at least 7 × 408 and the others 503", counts)
	}
	waitFor(t, func() bool { now, _ := g.publisher.InFlightBytes(); return now == 0 })
	if _, peak := g.publisher.InFlightBytes(); peak > cfg.MaxInFlightBytes {
		t.Errorf("in-flight bytes peaked at %d, over the budget %d", peak, cfg.MaxInFlightBytes)
	}
}

// rawCodec sends pre-encoded requests as they are, so that the flood's clients (in this
// process) share one copy of the large message and the heap measured is the gateway's.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
func (rawCodec) Name() string                       { return "proto" }

// A flood of large gRPC messages on several connections: each stream reserves the largest
// message of the budget when it opens (grpcapi.Tap), or is refused UNAVAILABLE before its
// message is read, so what the gateway holds stays within the budget: the reservations'
// high-water mark never exceeds --publish-max-inflight-bytes, and the heap stays under
// 4 × the budget + 64 MiB (the bound of the HTTP flood test, TestThrottledGatewayMemoryStaysBounded).
// Without the tap, 4 connections × 16 streams × 4.5 MiB would be about 300 MiB of messages.
func TestGRPCFloodStaysWithinTheBudget(t *testing.T) {
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	cfg := publishConfig()
	cfg.MaxInFlightBytes = 16 << 20
	cfg.MaxInFlightBytesPerProducer = cfg.MaxInFlightBytes // one producer may take it all: the bound is the budget's
	g := startGatewayOpts(t, kin.Endpoint, name, cfg, gatewayOptions{})
	g.kinesis = kin

	// 500 events with 9,000-character names: about 4.5 MB, under the 5 MiB message limit,
	// refused by validation (names are at most a few hundred characters) once decoded.
	msg := func() []byte {
		events := make([]*statsv1.StatEvent, 500)
		for i := range events {
			events[i] = testevents.Valid(900000+int64(i), i)
			events[i].Player.Name = strings.Repeat("x", 9000)
		}
		msg, err := proto.Marshal(&ingestv1.PutStatsRequest{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}()
	if len(msg) > grpcapi.MaxRequestBytes || len(msg) < 4<<20 {
		t.Fatalf("message of %d bytes, want 4 MiB to %d", len(msg), grpcapi.MaxRequestBytes)
	}
	runtime.GC() // the events are garbage: the heap measured starts from the gateway's own

	bound := uint64(cfg.MaxInFlightBytes)*4 + 64<<20
	heapPeak := sampleHeapInUse()

	const conns, streams, rounds = 4, 16, 2
	var invalid, busy, other atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		conn, err := grpc.NewClient(g.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		for range streams {
			wg.Go(func() {
				for range rounds {
					var resp ingestv1.PutStatsResponse
					err := conn.Invoke(t.Context(), ingestv1.IngestService_PutStats_FullMethodName, msg, &resp)
					switch status.Code(err) {
					case codes.InvalidArgument:
						invalid.Add(1)
					case codes.Unavailable:
						busy.Add(1)
					default:
						other.Add(1)
						t.Logf("unexpected answer: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	peak := heapPeak()

	_, peakReserved := g.publisher.InFlightBytes()
	t.Logf("%d read and refused invalid, %d refused busy before being read, %d other; reservations peaked at %d MiB, heap in use at %d MiB (bound %d MiB)",
		invalid.Load(), busy.Load(), other.Load(), peakReserved>>20, peak>>20, bound>>20)
	if invalid.Load() == 0 || busy.Load() == 0 || other.Load() != 0 {
		t.Errorf("answers: %d invalid, %d busy, %d other; want messages both read and refused before reading, nothing else", invalid.Load(), busy.Load(), other.Load())
	}
	if peakReserved > cfg.MaxInFlightBytes {
		t.Errorf("reservations peaked at %d bytes, over the budget of %d", peakReserved, cfg.MaxInFlightBytes)
	}
	if peak > bound {
		t.Errorf("heap in use peaked at %d MiB, over the bound of %d MiB", peak>>20, bound>>20)
	}
	waitFor(t, func() bool { now, _ := g.publisher.InFlightBytes(); return now == 0 })
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
