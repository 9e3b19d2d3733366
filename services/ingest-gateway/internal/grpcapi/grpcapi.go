// Package grpcapi serves boxscore.ingest.v1.IngestService over the same validation and
// publish path as the HTTP API.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// MaxRequestBytes is the largest PutStats request the server should accept (pass it to
// grpc.MaxRecvMsgSize): the PutRecords limit of one call.
const MaxRequestBytes = 5 << 20

// errorDomain names this service in ErrorInfo details.
const errorDomain = "ingest.boxscore.dev"

// Server implements ingestv1.IngestServiceServer.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	svc    *ingest.Service
	logger *slog.Logger
}

// NewServer returns the gRPC ingest service.
func NewServer(svc *ingest.Service, logger *slog.Logger) *Server {
	return &Server{svc: svc, logger: logger}
}

// PutStats validates the batch whole and publishes it. See the proto for the contract.
func (s *Server) PutStats(ctx context.Context, req *ingestv1.PutStatsRequest) (*ingestv1.PutStatsResponse, error) {
	results, err := s.svc.Submit(ctx, req.GetEvents())
	if err != nil {
		st := s.status(ctx, err)
		if st.Code() == codes.Unavailable || st.Code() == codes.Internal {
			s.logger.WarnContext(ctx, "batch not accepted", "code", st.Code().String(), "events", len(req.GetEvents()), "error", err)
		}
		return nil, st.Err()
	}
	return response(results), nil
}

// status maps a Submit error to a gRPC status with details a client can act on.
func (s *Server) status(ctx context.Context, err error) *status.Status {
	var (
		invalid     *ingest.InvalidBatchError
		tooMany     *ingest.TooManyEventsError
		busy        *publish.BusyError
		unavailable *publish.UnavailableError
		rejected    *publish.RejectedError
	)
	switch {
	case errors.Is(err, ingest.ErrEmptyBatch):
		return withDetails(status.New(codes.InvalidArgument, err.Error()), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "events", Reason: "required", Description: err.Error()}},
		})
	case errors.As(err, &tooMany):
		return withDetails(status.New(codes.ResourceExhausted, tooMany.Error()), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "events", Reason: "too_many", Description: tooMany.Error()}},
		})
	case errors.As(err, &invalid):
		br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, len(invalid.Violations))}
		for i, v := range invalid.Violations {
			field := "events[" + strconv.Itoa(v.Index) + "]"
			if v.Field != "" {
				field += "." + v.Field
			}
			br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{Field: field, Reason: v.Reason, Description: v.Detail}
		}
		msg := fmt.Sprintf("%d violations; the batch is validated whole, so none of its events was sent", len(invalid.Violations))
		return withDetails(status.New(codes.InvalidArgument, msg), br)
	case errors.As(err, &busy):
		return withDetails(status.New(codes.Unavailable, "the gateway has too many batches in flight; none of the events was sent: retry later"),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(busy.RetryAfter)},
			&errdetails.ErrorInfo{Reason: "BUSY", Domain: errorDomain})
	case errors.As(err, &unavailable):
		msg := fmt.Sprintf("the stream did not acknowledge every event in time (%d of %d acknowledged: those with a sequence number "+
			"in the PutStatsResponse detail); retrying the whole batch with the event ids of that detail is safe",
			countAcknowledged(unavailable.Results), len(unavailable.Results))
		return withDetails(status.New(codes.Unavailable, msg),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(unavailable.RetryAfter)},
			&errdetails.ErrorInfo{Reason: "STREAM_UNAVAILABLE", Domain: errorDomain},
			response(unavailable.Results))
	case errors.As(err, &rejected):
		msg := fmt.Sprintf("the stream refused events (%d of %d acknowledged: those with a sequence number in the PutStatsResponse detail): %v",
			countAcknowledged(rejected.Results), len(rejected.Results), rejected.Cause)
		return withDetails(status.New(codes.Internal, msg),
			&errdetails.ErrorInfo{Reason: "STREAM_REJECTED", Domain: errorDomain},
			response(rejected.Results))
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err())
	default:
		return status.New(codes.Internal, err.Error())
	}
}

// response lists the results in batch order. As an error detail it also carries the ids of
// the events Kinesis did not acknowledge (without shard and sequence number), so that a
// client can resend them under the ids the gateway assigned.
func response(results []publish.Result) *ingestv1.PutStatsResponse {
	resp := &ingestv1.PutStatsResponse{Results: make([]*ingestv1.EventResult, 0, len(results))}
	for _, r := range results {
		resp.Results = append(resp.Results, &ingestv1.EventResult{
			Index:          int32(r.Index), // at most 500 events
			EventId:        r.EventID,
			ShardId:        r.ShardID,
			SequenceNumber: r.SequenceNumber,
		})
	}
	return resp
}

func countAcknowledged(results []publish.Result) int {
	n := 0
	for _, r := range results {
		if r.Acknowledged() {
			n++
		}
	}
	return n
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
