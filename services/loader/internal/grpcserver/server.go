// Package grpcserver serves boxscore.load.v1.LoadService over a warehouse.Store.
//
// Errors map to gRPC statuses as follows:
//
//	warehouse.ValidationError          INVALID_ARGUMENT, with an errdetails.BadRequest of the field violations
//	warehouse.CheckpointMismatchError  FAILED_PRECONDITION, with the stored loadv1.Checkpoint as a detail
//	warehouse.FencedError              FAILED_PRECONDITION, with the stored loadv1.Checkpoint as a detail:
//	                                   its lease_token tells the client it lost the shard
//	the caller's context ended         CANCELLED or DEADLINE_EXCEEDED
//	warehouse.IsTransient              UNAVAILABLE: the client retries the same batch
//	warehouse.IsDataError              INVALID_ARGUMENT: the database refused the data (class 22/23)
//	                                   outside the rows (those are dead-lettered), e.g. a rejection
//	                                   it cannot store; retrying cannot help; with a BadRequest
//	                                   naming the column or constraint when the database said which
//	anything else                      INTERNAL
package grpcserver

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// Warehouse is what the server needs from warehouse.Store.
type Warehouse interface {
	Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error)
	GetCheckpoint(ctx context.Context, stream, shardID string) (*loadv1.Checkpoint, error)
	Claim(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error)
}

var _ Warehouse = (*warehouse.Store)(nil)

// Server implements loadv1.LoadServiceServer.
type Server struct {
	loadv1.UnimplementedLoadServiceServer

	warehouse Warehouse
	logger    *slog.Logger
}

var _ loadv1.LoadServiceServer = (*Server)(nil)

// New returns a Server over w. A nil logger discards logs.
func New(w Warehouse, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{warehouse: w, logger: logger}
}

// Load implements loadv1.LoadServiceServer.
func (s *Server) Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	attrs := []any{
		slog.String("stream", req.GetStream()),
		slog.String("shard_id", req.GetShardId()),
		slog.String("expected_sequence_number", req.GetExpectedSequenceNumber()),
		slog.String("sequence_number", req.GetSequenceNumber()),
		slog.Bool("shard_end", req.GetShardEnd()),
		slog.Int("rows", len(req.GetRows())),
		slog.Int("rejections", len(req.GetRejections())),
		slog.String("consumer_id", req.GetConsumerId()),
		slog.Int64("lease_token", req.GetLeaseToken()),
	}
	resp, err := s.warehouse.Load(ctx, req)
	if err != nil {
		return nil, s.fail(ctx, "load", err, attrs)
	}
	s.logger.DebugContext(ctx, "load committed", append(attrs,
		slog.Int("inserted", int(resp.GetInserted())),
		slog.Int("updated", int(resp.GetUpdated())),
		slog.Int("unchanged", int(resp.GetUnchanged())),
		slog.Int("dead_lettered", int(resp.GetDeadLettered())),
	)...)
	return resp, nil
}

// GetCheckpoint implements loadv1.LoadServiceServer.
func (s *Server) GetCheckpoint(ctx context.Context, req *loadv1.GetCheckpointRequest) (*loadv1.GetCheckpointResponse, error) {
	checkpoint, err := s.warehouse.GetCheckpoint(ctx, req.GetStream(), req.GetShardId())
	if err != nil {
		return nil, s.fail(ctx, "get checkpoint", err, []any{
			slog.String("stream", req.GetStream()),
			slog.String("shard_id", req.GetShardId()),
		})
	}
	return &loadv1.GetCheckpointResponse{Checkpoint: checkpoint}, nil
}

// ClaimShard implements loadv1.LoadServiceServer.
func (s *Server) ClaimShard(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error) {
	attrs := []any{
		slog.String("stream", req.GetStream()),
		slog.String("shard_id", req.GetShardId()),
		slog.Int64("lease_token", req.GetLeaseToken()),
		slog.String("owner", req.GetOwner()),
		slog.String("stream_identity", req.GetStreamIdentity()),
	}
	resp, err := s.warehouse.Claim(ctx, req)
	if err != nil {
		return nil, s.fail(ctx, "claim shard", err, attrs)
	}
	if reset := resp.GetArchived(); reset != nil {
		// The checkpoint belonged to an earlier stream of the same name: its position is
		// archived in stream_gap and the shard starts over. Records of the old stream read
		// by nobody are lost: an operator should know.
		s.logger.ErrorContext(ctx, "stream recreated: the shard's checkpoint belongs to an earlier stream of the same name; archived in stream_gap, the shard starts over from its oldest record",
			append(attrs, slog.String("old_stream_identity", reset.GetOldStreamIdentity()),
				slog.String("old_sequence_number", reset.GetAfterSequenceNumber()))...)
	}
	checkpoint := resp.GetCheckpoint()
	s.logger.InfoContext(ctx, "shard claimed", append(attrs,
		slog.String("sequence_number", checkpoint.GetSequenceNumber()),
		slog.Bool("shard_end", checkpoint.GetShardEnd()),
	)...)
	return resp, nil
}

// fail logs err at the level its class deserves and returns it as a gRPC status.
func (s *Server) fail(ctx context.Context, op string, err error, attrs []any) error {
	st := toStatus(ctx, err)
	attrs = append(attrs, slog.String("code", st.Code().String()), slog.Any("error", err))
	level := slog.LevelWarn // the client's problem, or one a retry solves
	if st.Code() == codes.Internal {
		level = slog.LevelError
	}
	s.logger.Log(ctx, level, op+" failed", attrs...)
	return st.Err()
}

// toStatus maps an error of the warehouse to a gRPC status (see the package comment).
func toStatus(ctx context.Context, err error) *status.Status {
	var invalid *warehouse.ValidationError
	if errors.As(err, &invalid) {
		violations := make([]*errdetails.BadRequest_FieldViolation, 0, len(invalid.Violations))
		for _, v := range invalid.Violations {
			violations = append(violations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		return withDetails(status.New(codes.InvalidArgument, err.Error()), &errdetails.BadRequest{FieldViolations: violations})
	}
	var mismatch *warehouse.CheckpointMismatchError
	if errors.As(err, &mismatch) {
		return withDetails(status.New(codes.FailedPrecondition, err.Error()), mismatch.Stored)
	}
	var fenced *warehouse.FencedError
	if errors.As(err, &fenced) {
		return withDetails(status.New(codes.FailedPrecondition, err.Error()), fenced.Stored)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr)
	}
	if warehouse.IsTransient(err) {
		return status.New(codes.Unavailable, err.Error())
	}
	if warehouse.IsDataError(err) {
		st := status.New(codes.InvalidArgument, err.Error())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			field := pgErr.ColumnName
			if field == "" {
				field = pgErr.ConstraintName
			}
			if field != "" {
				st = withDetails(st, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
					{Field: field, Description: pgErr.Message},
				}})
			}
		}
		return st
	}
	return status.New(codes.Internal, err.Error())
}

// withDetails attaches details to st. Attaching fails only if a detail cannot be
// marshalled; the code and message still say what happened, so the status is kept with
// the failure added to its message.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	detailed, err := st.WithDetails(details...)
	if err != nil {
		return status.New(st.Code(), st.Message()+" (status details dropped: "+err.Error()+")")
	}
	return detailed
}
