// Package readiness tells whether the gateway can take work: whether its stream exists and
// accepts writes.
package readiness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/boxscore-dev/boxscore/pkg/server"
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

// describe asks Kinesis. Every error wraps a server.PublicReason: /readyz shows that short
// reason only, while the whole error (whose AWS text names accounts and ARNs) is logged.
func (c *StreamCheck) describe(ctx context.Context) error {
	out, err := c.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(c.stream)})
	if err != nil {
		return fmt.Errorf("%w: describe stream %s: %w", publicReason(err), c.stream, err)
	}
	if out.StreamDescriptionSummary == nil {
		return fmt.Errorf("%w: describe stream %s: empty answer", server.PublicReason("unexpected answer from Kinesis"), c.stream)
	}
	switch s := out.StreamDescriptionSummary.StreamStatus; s {
	case types.StreamStatusActive, types.StreamStatusUpdating:
		return nil
	default:
		return fmt.Errorf("%w: stream %s is %s", server.PublicReason("stream is "+string(s)), c.stream, s)
	}
}

// publicReason says what kind of failure err is, in words that reveal nothing of the
// account.
func publicReason(err error) error {
	var notFound *types.ResourceNotFoundException
	var apiErr smithy.APIError
	switch {
	case errors.As(err, &notFound):
		return server.PublicReason("stream not found")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return server.PublicReason("Kinesis did not answer in time")
	case errors.As(err, &apiErr) && strings.Contains(apiErr.ErrorCode(), "AccessDenied"):
		return server.PublicReason("access to the stream denied")
	case errors.As(err, &apiErr):
		return server.PublicReason("Kinesis refused the request (" + apiErr.ErrorCode() + ")")
	default:
		return server.PublicReason("Kinesis unreachable")
	}
}
