package grpcserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// startServer serves the service on a real gRPC server on 127.0.0.1 and returns a client.
func startServer(t *testing.T) (transformv1.TransformServiceClient, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	meterProvider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = meterProvider.Shutdown(context.Background()) })

	svc, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), meterProvider.Meter("test"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(ServerOptions()...)
	transformv1.RegisterTransformServiceServer(srv, svc)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxMessageBytes), grpc.MaxCallRecvMsgSize(MaxMessageBytes)))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return transformv1.NewTransformServiceClient(conn), reader
}

func validEvent(playerID int64) *statsv1.StatEvent {
	i := proto.Int32
	return &statsv1.StatEvent{
		EventId: statevent.DeterministicEventID(playerID, "SDN202403200", 1),
		Player:  &statsv1.Player{MlbId: playerID, Name: "Player", Team: "LAD"},
		Game: &statsv1.Game{GameId: "SDN202403200", Date: "2024-03-20", Opponent: "SD",
			HomeAway: statsv1.HomeAway_HOME_AWAY_AWAY},
		Batting: &statsv1.BattingLine{
			PlateAppearances: i(4), AtBats: i(4), Runs: i(0), Hits: i(1), Doubles: i(0), Triples: i(0),
			HomeRuns: i(0), Rbi: i(0), BaseOnBalls: i(0), IntentionalWalks: i(0), StrikeOuts: i(2),
			HitByPitch: i(0), SacBunts: i(0), SacFlies: i(0), StolenBases: i(0), CaughtStealing: i(0),
			GroundIntoDoublePlay: i(0),
		},
	}
}

func position(seq int) *streamv1.RecordPosition {
	return &streamv1.RecordPosition{Stream: "boxscore-stats", ShardId: "shardId-000000000001", SequenceNumber: fmt.Sprintf("%020d", seq)}
}

func eventRecord(t *testing.T, seq int, ev *statsv1.StatEvent) *transformv1.SourceRecord {
	t.Helper()
	data, err := statevent.EncodeEnvelope(ev, time.Date(2024, 3, 21, 0, 0, 0, 0, time.UTC), nil)
	if err != nil {
		t.Fatalf("EncodeEnvelope: %v", err)
	}
	return &transformv1.SourceRecord{Position: position(seq), PartitionKey: "p", Data: data}
}

func TestTransformOverGRPC(t *testing.T) {
	client, reader := startServer(t)
	ctx := t.Context()

	bad := validEvent(3)
	bad.Batting.Hits = proto.Int32(5)
	req := &transformv1.TransformRequest{Records: []*transformv1.SourceRecord{
		eventRecord(t, 1, validEvent(1)),
		{Position: position(2), Data: []byte("garbage")},
		eventRecord(t, 3, bad),
		eventRecord(t, 4, validEvent(4)),
	}}
	resp, err := client.Transform(ctx, req)
	if err != nil {
		t.Fatalf("Transform: %v", err)
	}
	if len(resp.Rows) != 2 || len(resp.Rejections) != 2 {
		t.Fatalf("%d rows, %d rejections; want 2 and 2", len(resp.Rows), len(resp.Rejections))
	}
	for i, want := range []struct {
		seq    int
		player int64
	}{{1, 1}, {4, 4}} {
		row := resp.Rows[i]
		if !proto.Equal(row.Position, position(want.seq)) || row.Player.GetMlbId() != want.player || row.Season != 2024 || row.Singles != 1 {
			t.Errorf("row %d = %v", i, row)
		}
	}
	if r := resp.Rejections[0]; r.Stage != "decode" || r.Reason != "envelope_undecodable" || string(r.Payload) != "garbage" || !proto.Equal(r.Position, position(2)) {
		t.Errorf("rejection 0 = %v", r)
	}
	if r := resp.Rejections[1]; r.Stage != "validate" || r.Reason != "hits_exceed_at_bats" || r.Field != "batting.hits" ||
		r.EventId != bad.EventId || !proto.Equal(r.Position, position(3)) {
		t.Errorf("rejection 1 = %v", r)
	}

	got := recordCounts(t, reader)
	want := map[string]int64{
		"row":                                   2,
		"rejected/decode/envelope_undecodable":  1,
		"rejected/validate/hits_exceed_at_bats": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records metric = %v, want %v", got, want)
	}
}

// recordCounts reads the records counter as "outcome[/stage/reason]" -> count.
func recordCounts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "boxscore.transformer.records" {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("records metric is %T", m.Data)
			}
			for _, dp := range sum.DataPoints {
				key := []string{}
				for _, name := range []string{"outcome", "stage", "reason"} {
					if v, ok := dp.Attributes.Value(attribute.Key(name)); ok {
						key = append(key, v.AsString())
					}
				}
				out[strings.Join(key, "/")] += dp.Value
			}
		}
	}
	return out
}

func TestTransformRequestLimits(t *testing.T) {
	client, _ := startServer(t)
	ctx := t.Context()

	records := func(n int) []*transformv1.SourceRecord {
		out := make([]*transformv1.SourceRecord, n)
		for i := range out {
			out[i] = &transformv1.SourceRecord{Position: position(i), Data: []byte{0xff}}
		}
		return out
	}

	// At the limit: every record answered.
	resp, err := client.Transform(ctx, &transformv1.TransformRequest{Records: records(MaxRecords)})
	if err != nil {
		t.Fatalf("Transform(%d records): %v", MaxRecords, err)
	}
	if len(resp.Rows)+len(resp.Rejections) != MaxRecords {
		t.Errorf("%d records gave %d outcomes", MaxRecords, len(resp.Rows)+len(resp.Rejections))
	}

	// An empty batch is fine.
	resp, err = client.Transform(ctx, &transformv1.TransformRequest{})
	if err != nil || len(resp.Rows)+len(resp.Rejections) != 0 {
		t.Errorf("Transform(empty) = %v, %v", resp, err)
	}

	tooMany := records(MaxRecords + 1)
	noPosition := records(3)
	noPosition[1].Position = nil
	noSequence := records(3)
	noSequence[2].Position.SequenceNumber = ""
	noShard := records(3)
	noShard[0].Position.ShardId = ""
	noStream := records(3)
	noStream[0].Position.Stream = ""
	for _, tc := range []struct {
		name       string
		records    []*transformv1.SourceRecord
		wantDetail string
	}{
		{"too many records", tooMany, "10001 records"},
		{"record without position", noPosition, "records[1]"},
		{"position without sequence number", noSequence, "records[2]"},
		{"position without shard", noShard, "records[0]"},
		{"position without stream", noStream, "records[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Transform(ctx, &transformv1.TransformRequest{Records: tc.records})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("error = %v, want InvalidArgument", err)
			}
			if !strings.Contains(status.Convert(err).Message(), tc.wantDetail) {
				t.Errorf("message %q does not mention %q", status.Convert(err).Message(), tc.wantDetail)
			}
		})
	}
}

// A batch as large as one GetRecords call can return (10 MiB of data) goes through; gRPC's
// default 4 MiB limit would refuse it.
func TestTransformLargestKinesisBatch(t *testing.T) {
	client, _ := startServer(t)
	const recordBytes = 10 << 20 / 1000 // 1,000 records of about 10 KiB
	var req transformv1.TransformRequest
	for i := range 1000 {
		req.Records = append(req.Records, &transformv1.SourceRecord{Position: position(i), Data: make([]byte, recordBytes)})
	}
	if size := proto.Size(&req); size < 10<<20 {
		t.Fatalf("request is only %d bytes", size)
	}
	resp, err := client.Transform(t.Context(), &req)
	if err != nil {
		t.Fatalf("Transform(10 MiB): %v", err)
	}
	// Every record is rejected and carries its data back: the response is as large.
	if len(resp.Rejections) != 1000 {
		t.Errorf("%d rejections, want 1000", len(resp.Rejections))
	}
}
