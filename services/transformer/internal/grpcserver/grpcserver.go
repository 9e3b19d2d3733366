// Package grpcserver exposes the transform logic as boxscore.transform.v1.TransformService.
package grpcserver

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/services/transformer/internal/transform"
)

const (
	// MaxRecords is the most records one Transform call may carry: one Kinesis GetRecords
	// answer, so a consumer never has to split a batch it read.
	MaxRecords = limits.BatchMaxRecords
	// MaxMessageBytes bounds a Transform request or response (see limits).
	MaxMessageBytes = limits.TransformMessageBytes
)

// ServerOptions are the gRPC server options the service needs.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes)}
}

// Service implements TransformService.
type Service struct {
	transformv1.UnimplementedTransformServiceServer
	logger  *slog.Logger
	records metric.Int64Counter
}

// New returns the service. It records its metrics on meter.
func New(logger *slog.Logger, meter metric.Meter) (*Service, error) {
	records, err := meter.Int64Counter("boxscore.transformer.records",
		metric.WithUnit("{record}"),
		metric.WithDescription("Records transformed, by outcome (row or rejected) and, for rejections, stage and reason."))
	if err != nil {
		return nil, fmt.Errorf("create records counter: %w", err)
	}
	return &Service{logger: logger, records: records}, nil
}

// Transform turns a batch of records into rows and rejections. The call fails only when
// the request itself is wrong (too many records, a record without a position); bad record
// data becomes a rejection.
func (s *Service) Transform(ctx context.Context, req *transformv1.TransformRequest) (*transformv1.TransformResponse, error) {
	records := req.GetRecords()
	if len(records) > MaxRecords {
		return nil, status.Errorf(codes.InvalidArgument, "%d records in one request, at most %d are allowed", len(records), MaxRecords)
	}
	for i, rec := range records {
		// The position is how rows and rejections are matched to records and checkpoints
		// advanced, so a record without one cannot be handled safely.
		p := rec.GetPosition()
		if p.GetStream() == "" || p.GetShardId() == "" || p.GetSequenceNumber() == "" {
			return nil, status.Errorf(codes.InvalidArgument,
				"records[%d]: position with stream, shard_id and sequence_number is required", i)
		}
	}

	resp := transform.Transform(records)

	s.records.Add(ctx, int64(len(resp.GetRows())), metric.WithAttributes(attribute.String("outcome", "row")))
	rejected := map[[2]string]int64{}
	for _, rej := range resp.GetRejections() {
		rejected[[2]string{rej.GetStage(), rej.GetReason()}]++
	}
	for key, n := range rejected {
		s.records.Add(ctx, n, metric.WithAttributes(
			attribute.String("outcome", "rejected"), attribute.String("stage", key[0]), attribute.String("reason", key[1])))
	}
	trace.SpanFromContext(ctx).SetAttributes(
		attribute.Int("boxscore.records", len(records)),
		attribute.Int("boxscore.rows", len(resp.GetRows())),
		attribute.Int("boxscore.rejections", len(resp.GetRejections())),
	)
	if n := len(resp.GetRejections()); n > 0 {
		first := resp.GetRejections()[0]
		s.logger.InfoContext(ctx, "records rejected",
			"records", len(records), "rejections", n,
			"first_stage", first.GetStage(), "first_reason", first.GetReason(),
			"first_event_id", first.GetEventId(), "first_shard_id", first.GetPosition().GetShardId(),
			"first_sequence_number", first.GetPosition().GetSequenceNumber())
	}
	return resp, nil
}
