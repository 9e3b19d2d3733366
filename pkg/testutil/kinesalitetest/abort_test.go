package kinesalitetest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// A client that disconnects in the middle of a request body (a killed
// process, a timed-out SDK call) must cost only that request. Unwrapped,
// kinesalite rethrows the request's "aborted" error and the whole server
// exits, which is how a full test run once lost its shared kinesalite.
func TestClientAbortingMidBodyLeavesTheServerRunning(t *testing.T) {
	p := Launch(t, Options{})
	u, err := url.Parse(p.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		// Announce 1000 bytes, send a few, then reset the connection.
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n{\"StreamName\":", u.Host)
		time.Sleep(100 * time.Millisecond)
		if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var lastErr error
	for ctx.Err() == nil {
		if _, lastErr = p.Client(t).ListStreams(ctx, &kinesis.ListStreamsInput{}); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("kinesalite stopped answering after clients aborted their requests: %v", lastErr)
	}
	// Launch's cleanup fails the test if the process exited before it was stopped.
	p.Stop(t)
}
