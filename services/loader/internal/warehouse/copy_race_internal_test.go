package warehouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

// copyGate holds a connection's first COPY data message until released, and fails the
// connection's reads meanwhile: the connection breaking in the middle of a COPY.
type copyGate struct {
	once     sync.Once
	blocked  chan struct{} // closed when the first COPY data message is held
	release  chan struct{} // closed by the test to let it through
	mu       sync.Mutex
	writes   int
	finished chan struct{} // closed when the writer wrote again after the release
}

type gatedConn struct {
	net.Conn
	gate *copyGate
}

func (c *gatedConn) Write(p []byte) (int, error) {
	if len(p) == 0 || p[0] != 'd' { // not COPY data
		return c.Conn.Write(p)
	}
	g := c.gate
	g.mu.Lock()
	g.writes++
	n := g.writes
	g.mu.Unlock()
	switch n {
	case 1:
		// The server's answers stop: the read pgx waits on fails now, as on a broken
		// connection, and CopyFrom returns while this write is still held.
		_ = c.SetReadDeadline(time.Now())
		g.once.Do(func() { close(g.blocked) })
		<-g.release
		return len(p), nil // the writer goes on, and reads its next data
	case 2:
		close(g.finished)
	}
	return 0, errors.New("connection closed")
}

// A COPY that fails with its connection does not give its buffer back for reuse: pgx's
// CopyFrom (v5.12) can return on a connection error while its writer goroutine is still
// reading the data, so a buffer reused by the next load would be written under that read.
// The chaos soak's PostgreSQL faults hit it (the race detector failed the loader). Under
// -race this test fails when copyRows pools such a buffer: the writes below into a reused
// buffer race the writer's reads of it.
func TestFailedCopyDoesNotReuseItsBuffer(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	gate := &copyGate{blocked: make(chan struct{}), release: make(chan struct{}), finished: make(chan struct{})}
	var dialer net.Dialer
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &gatedConn{Conn: c, gate: gate}, nil
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	// Enough rows for the writer to read its data in more than one piece (64 KiB each).
	base := copyTestRows()[0]
	rows := make([]FactRow, 600)
	for i := range rows {
		rows[i] = base
		rows[i].PlayerID = int64(i + 1)
		rows[i].GameID = fmt.Sprintf("g%d", i)
	}
	if _, err := copyRows(t.Context(), conn, rows, true, beginAndCopySQL+copyFactsSQL); err == nil {
		t.Fatal("the COPY succeeded on a broken connection")
	}
	<-gate.blocked

	// Let the writer go on reading, and do what the next loads do meanwhile: take a buffer
	// and write their data into it. sync.Pool gives back the buffer just put, most of the
	// time (the race detector's Pool drops some at random: hence a few).
	close(gate.release)
	for range 4 {
		buf := getCopyBuffer()
		*buf = appendCopyData(*buf, rows, true)
		putCopyBuffer(buf)
	}
	select {
	case <-gate.finished:
	case <-time.After(30 * time.Second):
		t.Fatal("pgx's COPY writer did not write again after its first write was released")
	}
}
