package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
)

// sampleError is a failure of kind k with every field its kind carries.
func sampleError(k ingest.Kind) error {
	e := &ingest.Error{Kind: k, Err: errors.New("cause")}
	switch k {
	case ingest.KindBusy, ingest.KindOverQuota:
		e.RetryAfter = 1500 * time.Millisecond
	case ingest.KindForbidden:
		e.Violations = []ingest.Violation{{Index: 2, EventID: "c", Violation: statevent.Violation{Field: "source", Reason: "source", Detail: "d"}}}
	case ingest.KindStreamUnavailable:
		e.RetryAfter = 1500 * time.Millisecond
		fallthrough
	case ingest.KindStreamRejected:
		e.Results = []ingest.Result{
			{Index: 0, EventID: "a", ShardID: "shardId-000000000000", SequenceNumber: "1"},
			{Index: 1, EventID: "b", ErrorCode: "ProvisionedThroughputExceededException"},
		}
	case ingest.KindInvalid:
		e.Violations = []ingest.Violation{
			{Index: 2, EventID: "c", Violation: statevent.Violation{Field: "batting.atBats", Reason: "required", Detail: "d"}},
			{Index: ingest.BatchIndex, Violation: statevent.Violation{Field: "events", Reason: "required", Detail: "none"}},
		}
	}
	return fmt.Errorf("submit: %w", e)
}

// TestEveryKindHasACode maps each kind of the closed set of ingest.Kinds to its gRPC status,
// and fails for a kind added without a code (here and in kindCodes).
func TestEveryKindHasACode(t *testing.T) {
	want := map[ingest.Kind]struct {
		code    codes.Code
		reason  string // of the ErrorInfo detail, if any
		retry   bool   // a RetryInfo detail
		results bool   // a PutStatsResponse detail
		fields  []string
	}{
		ingest.KindInvalid:           {code: codes.InvalidArgument, fields: []string{"events[2].batting.atBats", "events"}},
		ingest.KindTooLarge:          {code: codes.ResourceExhausted, fields: []string{"events"}},
		ingest.KindBusy:              {code: codes.Unavailable, reason: "BUSY", retry: true},
		ingest.KindStreamUnavailable: {code: codes.Unavailable, reason: "STREAM_UNAVAILABLE", retry: true, results: true},
		ingest.KindStreamRejected:    {code: codes.Internal, reason: "STREAM_REJECTED", results: true},
		ingest.KindInternal:          {code: codes.Internal},
		ingest.KindUnauthenticated:   {code: codes.Unauthenticated, reason: "UNAUTHENTICATED"},
		ingest.KindForbidden:         {code: codes.PermissionDenied, reason: "FORBIDDEN", fields: []string{"events[2].source"}},
		ingest.KindOverQuota:         {code: codes.ResourceExhausted, reason: "QUOTA_EXCEEDED", retry: true},
	}
	s := NewServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for _, kind := range ingest.Kinds() {
		t.Run(kind.String(), func(t *testing.T) {
			w, ok := want[kind]
			if !ok {
				t.Fatalf("kind %s has no expected code: give it one in kindCodes and here", kind)
			}
			if _, ok := kindCodes[kind]; !ok {
				t.Errorf("kind %s has no entry in kindCodes", kind)
			}
			st := s.status(t.Context(), sampleError(kind))
			if st.Code() != w.code || st.Message() == "" {
				t.Errorf("status %s %q, want %s with a message", st.Code(), st.Message(), w.code)
			}
			var (
				reason  string
				retry   *errdetails.RetryInfo
				partial *ingestv1.PutStatsResponse
				fields  []string
			)
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.ErrorInfo:
					reason = d.GetReason()
				case *errdetails.RetryInfo:
					retry = d
				case *ingestv1.PutStatsResponse:
					partial = d
				case *errdetails.BadRequest:
					for _, v := range d.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				default:
					t.Errorf("unexpected detail %T", d)
				}
			}
			if reason != w.reason {
				t.Errorf("ErrorInfo reason %q, want %q", reason, w.reason)
			}
			if (retry != nil) != w.retry || (retry != nil && retry.GetRetryDelay().AsDuration() != 1500*time.Millisecond) {
				t.Errorf("RetryInfo %v, want one of 1.5s: %t", retry, w.retry)
			}
			wantPartial := &ingestv1.PutStatsResponse{Results: []*ingestv1.EventResult{
				{Index: 0, EventId: "a", ShardId: "shardId-000000000000", SequenceNumber: "1"},
				{Index: 1, EventId: "b"},
			}}
			if (partial != nil) != w.results || (partial != nil && !proto.Equal(partial, wantPartial)) {
				t.Errorf("PutStatsResponse detail %v, want %v: %t", partial, wantPartial, w.results)
			}
			if fmt.Sprint(fields) != fmt.Sprint(w.fields) {
				t.Errorf("field violations %v, want %v", fields, w.fields)
			}
		})
	}
	if len(kindCodes) != len(ingest.Kinds()) {
		t.Errorf("kindCodes maps %d kinds, ingest has %d", len(kindCodes), len(ingest.Kinds()))
	}
}

func TestAnUnclassifiedErrorIsInternalOrTheContextsEnd(t *testing.T) {
	s := NewServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if code := s.status(t.Context(), errors.New("surprise")).Code(); code != codes.Internal {
		t.Errorf("code %s, want Internal", code)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if code := s.status(ctx, errors.New("surprise")).Code(); code != codes.Canceled {
		t.Errorf("code after the client cancelled %s, want Canceled", code)
	}
}
