// Package grpcapi serves boxscore.ingest.v1.IngestService over the same validation and
// publish path as the HTTP API.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
)

// MaxRequestBytes is the largest PutStats request the server should accept (pass it to
// grpc.MaxRecvMsgSize): the PutRecords limit of one call.
const MaxRequestBytes = limits.IngestRequestBytes

// MaxHeaderBytes bounds a PutStats request's metadata (pass it to grpc.MaxHeaderListSize).
const MaxHeaderBytes = 64 << 10

// errorDomain names this service in ErrorInfo details.
const errorDomain = "ingest.boxscore.dev"

// Server implements ingestv1.IngestServiceServer.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	svc    *ingest.Service
	logger *slog.Logger
	auth   *auth.Authenticator
}

// NewServer returns the gRPC ingest service; a nil or disabled authenticator makes every
// caller anonymous. Install Tap (grpc.InTapHandle) on the server as well: it authenticates
// API keys and reserves the in-flight budget before a message is read.
func NewServer(svc *ingest.Service, logger *slog.Logger, authn *auth.Authenticator) *Server {
	return &Server{svc: svc, logger: logger, auth: authn}
}

// PutStats validates the batch whole and publishes it. See the proto for the contract.
func (s *Server) PutStats(ctx context.Context, req *ingestv1.PutStatsRequest) (*ingestv1.PutStatsResponse, error) {
	st := tapStateFrom(ctx)
	var res *ingest.Reservation
	var principal *auth.Principal
	if st != nil {
		st.started()
		defer st.res.Release()
		// The stream reserved the largest message; the one read needs its own size.
		st.res.Shrink(int64(proto.Size(req)))
		res, principal = st.res, st.principal
		if st.remote.IsValid() {
			trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: st.remote})
		}
	}
	if principal == nil { // a JWT (or no tap): authenticate now
		var err error
		principal, err = s.auth.Authenticate(ctx, authorization(ctx))
		if err != nil {
			s.svc.Refused(ctx, nil, ingest.KindUnauthenticated)
			return nil, s.status(ctx, &ingest.Error{Kind: ingest.KindUnauthenticated, Err: err}).Err()
		}
		if st == nil {
			if err := s.svc.Admit(ctx, ingest.Caller{Principal: principal}); err != nil {
				return nil, s.status(ctx, err).Err()
			}
		}
	}
	results, err := s.svc.SubmitReserved(ctx, res, ingest.Caller{Principal: principal}, req.GetEvents())
	if err != nil {
		st := s.status(ctx, err)
		if st.Code() == codes.Unavailable || st.Code() == codes.Internal {
			s.logger.WarnContext(ctx, "batch not accepted", "code", st.Code().String(), "events", len(req.GetEvents()), "error", err)
		}
		return nil, st.Err()
	}
	return response(results), nil
}

// kindCodes is the gRPC code of each kind of failure. Every kind of ingest.Kinds has one
// (TestEveryKindHasACode).
var kindCodes = map[ingest.Kind]codes.Code{
	ingest.KindInvalid:           codes.InvalidArgument,
	ingest.KindTooLarge:          codes.ResourceExhausted,
	ingest.KindBusy:              codes.Unavailable,
	ingest.KindStreamUnavailable: codes.Unavailable,
	ingest.KindStreamRejected:    codes.Internal,
	ingest.KindInternal:          codes.Internal,
	ingest.KindUnauthenticated:   codes.Unauthenticated,
	ingest.KindForbidden:         codes.PermissionDenied,
	ingest.KindOverQuota:         codes.ResourceExhausted,
}

// status maps a Submit error to a gRPC status with details a client can act on. What the
// failure is, ingest has decided; this only says it in gRPC.
func (s *Server) status(ctx context.Context, err error) *status.Status {
	var e *ingest.Error
	if !errors.As(err, &e) {
		e = &ingest.Error{Kind: ingest.KindInternal, Err: err}
	}
	code, ok := kindCodes[e.Kind]
	if !ok {
		code = codes.Internal
	}
	switch e.Kind {
	case ingest.KindInvalid:
		br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, len(e.Violations))}
		for i, v := range e.Violations {
			field := "events"
			if v.Index != ingest.BatchIndex {
				field += "[" + strconv.Itoa(v.Index) + "]"
				if v.Field != "" {
					field += "." + v.Field
				}
			}
			br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{Field: field, Reason: v.Reason, Description: v.Detail}
		}
		msg := fmt.Sprintf("%d violations; the batch is validated whole, so none of its events was sent", len(e.Violations))
		return withDetails(status.New(code, msg), br)
	case ingest.KindTooLarge:
		return withDetails(status.New(code, e.Error()), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "events", Reason: "too_many", Description: e.Error()}},
		})
	case ingest.KindUnauthenticated:
		return withDetails(status.New(code, "send a valid credential in the authorization metadata: Bearer <API key or token>"),
			&errdetails.ErrorInfo{Reason: "UNAUTHENTICATED", Domain: errorDomain})
	case ingest.KindForbidden:
		br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, len(e.Violations))}
		for i, v := range e.Violations {
			br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{
				Field: "events[" + strconv.Itoa(v.Index) + "]." + v.Field, Reason: v.Reason, Description: v.Detail,
			}
		}
		msg := fmt.Sprintf("%d events this producer may not send (a scope it lacks, or a source it does not own); none was sent", len(e.Violations))
		return withDetails(status.New(code, msg), &errdetails.ErrorInfo{Reason: "FORBIDDEN", Domain: errorDomain}, br)
	case ingest.KindOverQuota:
		return withDetails(status.New(code, "the producer is over its quota of events or bytes per second; none of the events was sent: retry after the RetryInfo delay"),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)},
			&errdetails.ErrorInfo{Reason: "QUOTA_EXCEEDED", Domain: errorDomain})
	case ingest.KindBusy:
		return withDetails(status.New(code, "the gateway has too many batches in flight; none of the events was sent: retry later"),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)},
			&errdetails.ErrorInfo{Reason: "BUSY", Domain: errorDomain})
	case ingest.KindStreamUnavailable:
		msg := fmt.Sprintf("the stream did not acknowledge every event in time (%d of %d acknowledged: those with a sequence number "+
			"in the PutStatsResponse detail); retrying the whole batch with the event ids of that detail is safe",
			e.Acknowledged(), len(e.Results))
		return withDetails(status.New(code, msg),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)},
			&errdetails.ErrorInfo{Reason: "STREAM_UNAVAILABLE", Domain: errorDomain},
			response(e.Results))
	case ingest.KindStreamRejected:
		msg := fmt.Sprintf("the stream refused events (%d of %d acknowledged: those with a sequence number in the PutStatsResponse detail): %v",
			e.Acknowledged(), len(e.Results), e.Err)
		return withDetails(status.New(code, msg),
			&errdetails.ErrorInfo{Reason: "STREAM_REJECTED", Domain: errorDomain},
			response(e.Results))
	default:
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err())
		}
		return status.New(code, err.Error())
	}
}

// response lists the results in batch order. As an error detail it also carries the ids of
// the events Kinesis did not acknowledge (without shard and sequence number), so that a
// client can resend them under the ids the gateway assigned.
func response(results []ingest.Result) *ingestv1.PutStatsResponse {
	resp := &ingestv1.PutStatsResponse{Results: make([]*ingestv1.EventResult, len(results))}
	// One allocation for all the results instead of one each.
	all := make([]ingestv1.EventResult, len(results))
	for i, r := range results {
		res := &all[i]
		res.Index = int32(r.Index) // at most 500 events
		res.EventId, res.ShardId, res.SequenceNumber = r.EventID, r.ShardID, r.SequenceNumber
		resp.Results[i] = res
	}
	return resp
}

// withDetails attaches details to st; if that fails (it cannot for these message types),
// the status goes out without them rather than not at all.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	withD, err := st.WithDetails(details...)
	if err != nil {
		return st
	}
	return withD
}
