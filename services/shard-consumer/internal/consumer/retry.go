package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryPolicy bounds the waits between attempts of a transient failure. Transient failures
// are retried without an attempt limit: giving up would mean skipping records or
// dead-lettering a record for an infrastructure fault, and both break the delivery promise.
type RetryPolicy struct {
	Initial time.Duration
	Max     time.Duration
}

func (p RetryPolicy) backOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.Initial
	b.MaxInterval = p.Max
	b.RandomizationFactor = 0.5 // full spread, so shards that failed together retry apart
	return b
}

// retry runs op until it succeeds, fails permanently, or ctx ends. notify sees every
// transient failure before the wait.
func retry[T any](ctx context.Context, p RetryPolicy, op func() (T, error), notify func(error, time.Duration)) (T, error) {
	return backoff.Retry(ctx, func() (T, error) {
		v, err := op()
		if err != nil && !isTransient(err) {
			return v, backoff.Permanent(err)
		}
		return v, err
	}, backoff.WithBackOff(p.backOff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(notify))
}

// transientGRPC are the gRPC codes that say "try again later": the peer is restarting,
// overloaded, or the call timed out. Internal and Unknown are included because a crashing
// peer produces them; retrying is safe since Load is idempotent through its checkpoint CAS.
var transientGRPC = map[codes.Code]bool{
	codes.Unavailable:       true,
	codes.DeadlineExceeded:  true,
	codes.ResourceExhausted: true,
	codes.Aborted:           true,
	codes.Internal:          true,
	codes.Unknown:           true,
}

// transientKinesis are the Kinesis error codes that are part of normal operation.
var transientKinesis = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"LimitExceededException":                 true,
	"ThrottlingException":                    true,
	"InternalFailure":                        true,
	"ServiceUnavailable":                     true,
	"KMSThrottlingException":                 true,
	"RequestExpired":                         true,
}

// isTransient reports whether err may go away by itself. Unclassified errors (a dropped
// connection, a timeout) are treated as transient: the cost of a wrong "transient" is a
// stalled shard that alerts; the cost of a wrong "permanent" is lost data.
func isTransient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK {
		return transientGRPC[s.Code()]
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if transientKinesis[apiErr.ErrorCode()] {
			return true
		}
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	return true
}

// backoffPermanent marks err as not worth retrying inside a retry loop.
func backoffPermanent(err error) error { return backoff.Permanent(err) }
