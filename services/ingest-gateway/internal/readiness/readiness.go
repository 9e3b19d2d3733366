// Package readiness tells whether the gateway can take work: whether its stream exists and
// accepts writes.
package readiness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/stream"
)

// StreamCheck reports whether a stream is ACTIVE or UPDATING (the states in which
// PutRecords works). It remembers its last answer for a while, so that frequent probes from
// several places do not each cost a DescribeStreamSummary call (which Kinesis limits to 20
// per second per account).
type StreamCheck struct {
	api    stream.API
	stream string
	ttl    time.Duration
	now    func() time.Time

	mu        sync.Mutex
	checkedAt time.Time
	last      error
}

// NewStreamCheck returns a check of the named stream whose answers are reused for ttl.
func NewStreamCheck(api stream.API, streamName string, ttl time.Duration) *StreamCheck {
	return &StreamCheck{api: api, stream: streamName, ttl: ttl, now: time.Now}
}

// Check returns nil when the stream takes writes. Concurrent probes share one call.
func (c *StreamCheck) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checkedAt.IsZero() && c.now().Sub(c.checkedAt) < c.ttl {
		return c.last
	}
	c.last = c.describe(ctx)
	c.checkedAt = c.now()
	return c.last
}

func (c *StreamCheck) describe(ctx context.Context) error {
	out, err := c.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(c.stream)})
	if err != nil {
		return fmt.Errorf("describe stream %s: %w", c.stream, err)
	}
	if out.StreamDescriptionSummary == nil {
		return fmt.Errorf("describe stream %s: empty answer", c.stream)
	}
	switch s := out.StreamDescriptionSummary.StreamStatus; s {
	case types.StreamStatusActive, types.StreamStatusUpdating:
		return nil
	default:
		return fmt.Errorf("stream %s is %s", c.stream, s)
	}
}
