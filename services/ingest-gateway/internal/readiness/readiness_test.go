package readiness

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
)

// countingStream is the real kinesalite client, counting DescribeStreamSummary calls.
type countingStream struct {
	stream.API
	describes atomic.Int32
}

func (c *countingStream) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	c.describes.Add(1)
	return c.API.DescribeStreamSummary(ctx, in, optFns...)
}

func TestStreamCheck(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	api := &countingStream{API: srv.Client(t)}

	now := time.Unix(1_700_000_000, 0)
	check := NewStreamCheck(api, name, 5*time.Second)
	check.now = func() time.Time { return now }

	for range 3 {
		if err := check.Check(t.Context()); err != nil {
			t.Fatalf("Check of an ACTIVE stream: %v", err)
		}
	}
	if n := api.describes.Load(); n != 1 {
		t.Errorf("3 probes within the TTL made %d DescribeStreamSummary calls, want 1", n)
	}
	now = now.Add(6 * time.Second)
	if err := check.Check(t.Context()); err != nil {
		t.Fatalf("Check after the TTL: %v", err)
	}
	if n := api.describes.Load(); n != 2 {
		t.Errorf("a probe after the TTL made %d calls in all, want 2", n)
	}

	missing := NewStreamCheck(api, name+"-missing", 5*time.Second)
	err := missing.Check(t.Context())
	if err == nil {
		t.Fatal("Check of a missing stream succeeded")
	}
	// The public reason leads; /readyz shows it alone (server.PublicReason).
	if !strings.HasPrefix(err.Error(), "stream not found: ") {
		t.Errorf("error %q does not start with the public reason \"stream not found\"", err)
	}
}
