package stream_test

import (
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
)

// Concurrent calls keep their connections: a gateway has as many PutRecords in flight as
// it has requests, and the SDK's default transport keeps only 10 idle connections per host,
// so every call beyond the tenth would close its connection after the answer and the next
// one dial again (a TCP handshake here, a TLS one against AWS, a new socket for the server).
func TestConcurrentCallsReuseConnections(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	client, err := stream.NewKinesisClient(t.Context(),
		stream.Config{Name: name, Region: kinesalitetest.Region, Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	srv.CreateStream(t, name, 1)

	const callers, rounds = 32, 8
	var dialled, calls atomic.Int64
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			calls.Add(1)
			if !info.Reused {
				dialled.Add(1)
			}
		},
	})
	for range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				if _, err := client.PutRecords(ctx, putEntries(name, 5)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	// At most callers calls are in flight at once, so with every finished call's connection
	// kept, no more than callers connections are ever needed; the slack covers a dial that
	// loses the race to a connection freed meanwhile (the transport keeps both).
	t.Logf("%d of %d calls dialled a new connection", dialled.Load(), calls.Load())
	if got, limit := dialled.Load(), int64(2*callers); got > limit {
		t.Errorf("%d of %d calls dialled a new connection, want at most %d: finished calls' connections were closed, not kept", got, calls.Load(), limit)
	}
}
