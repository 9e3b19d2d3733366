package consumer

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// fill sets every field of m (recursively, two elements per list, one entry per map) to a
// value derived from seed, and appends a field no version of the schema has, as a future
// transformer would send it.
func fill(m protoreflect.Message, seed int, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			list := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					if depth > 0 {
						el := list.NewElement()
						fill(el.Message(), seed+j, depth-1)
						list.Append(el)
					}
					continue
				}
				list.Append(scalar(fd, seed+j))
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			key := scalar(fd.MapKey(), seed).MapKey()
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				if depth > 0 {
					v := mp.NewValue()
					fill(v.Message(), seed, depth-1)
					mp.Set(key, v)
				}
				continue
			}
			mp.Set(key, scalar(fd.MapValue(), seed))
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if depth > 0 {
				fill(m.Mutable(fd).Message(), seed, depth-1)
			}
		default:
			m.Set(fd, scalar(fd, seed))
		}
	}
	unknown := protowire.AppendTag(nil, 1999, protowire.BytesType)
	unknown = protowire.AppendString(unknown, fmt.Sprintf("future-%d", seed))
	m.SetUnknown(unknown)
}

// scalar is a value of fd's kind that is never the default.
func scalar(fd protoreflect.FieldDescriptor, seed int) protoreflect.Value {
	n := int64(seed%97 + 1)
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		return protoreflect.ValueOfEnum(values.Get(values.Len() - 1).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(n)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(n) + 0.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(n) + 0.25)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), seed))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fmt.Sprintf("%s-%d\x00\xff", fd.Name(), seed)))
	}
	panic(fmt.Sprintf("fill: kind %s not handled", fd.Kind()))
}

// scriptedTransformer answers every Transform with its answer; recordingLoader keeps the
// requests it decoded.
type scriptedTransformer struct {
	transformv1.UnimplementedTransformServiceServer
	answer *transformv1.TransformResponse
}

func (s *scriptedTransformer) Transform(context.Context, *transformv1.TransformRequest) (*transformv1.TransformResponse, error) {
	return s.answer, nil
}

type recordingLoader struct {
	loadv1.UnimplementedLoadServiceServer
	mu       sync.Mutex
	received []*loadv1.LoadRequest
}

func (l *recordingLoader) Load(_ context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received = append(l.received, req)
	return &loadv1.LoadResponse{Checkpoint: &loadv1.Checkpoint{SequenceNumber: req.GetSequenceNumber()}}, nil
}

// serveRows serves the transformer and the loader on a loopback port and returns a
// connection to them.
func serveRows(t *testing.T, tr transformv1.TransformServiceServer, l loadv1.LoadServiceServer) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	transformv1.RegisterTransformServiceServer(srv, tr)
	loadv1.RegisterLoadServiceServer(srv, l)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// inProcessClients call the servers directly, as the consumer's tests' fakes do.
type inProcessClients struct {
	tr transformv1.TransformServiceServer
	l  loadv1.LoadServiceServer
}

func (c inProcessClients) Transform(ctx context.Context, req *transformv1.TransformRequest, _ ...grpc.CallOption) (*transformv1.TransformResponse, error) {
	return c.tr.Transform(ctx, req)
}

func (c inProcessClients) Load(ctx context.Context, req *loadv1.LoadRequest, _ ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	return c.l.Load(ctx, req)
}

func (c inProcessClients) GetCheckpoint(context.Context, *loadv1.GetCheckpointRequest, ...grpc.CallOption) (*loadv1.GetCheckpointResponse, error) {
	return nil, fmt.Errorf("not used")
}

func (c inProcessClients) ClaimShard(context.Context, *loadv1.ClaimShardRequest, ...grpc.CallOption) (*loadv1.ClaimShardResponse, error) {
	return nil, fmt.Errorf("not used")
}

// The Load request the loader decodes from the pass-through's bytes is the one the
// consumer built before (rows decoded from the Transform answer and encoded again), for
// rows and rejections with every field set and fields from a future schema, over gRPC and
// with in-process clients.
func TestPassThroughLoadRequestEqualsTheDecodedOne(t *testing.T) {
	answer := &transformv1.TransformResponse{}
	for i := range 5 {
		row := &warehousev1.BattingGameRow{}
		fill(row.ProtoReflect(), i, 3)
		answer.Rows = append(answer.Rows, row)
	}
	for i := range 2 {
		rej := &warehousev1.Rejection{}
		fill(rej.ProtoReflect(), 10+i, 3)
		answer.Rejections = append(answer.Rejections, rej)
	}
	// A field a later transformer might add: skipped, as protobuf skips it.
	answer.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	header := &loadv1.LoadRequest{}
	fill(header.ProtoReflect(), 20, 3)
	header.Rows, header.Rejections = nil, nil

	tr := &scriptedTransformer{answer: answer}
	conn := serveRows(t, tr, &recordingLoader{})
	viaGRPC := &recordingLoader{}
	grpcTransformer, grpcLoader := GRPCClients(conn, serveRows(t, tr, viaGRPC))
	inProcess := &recordingLoader{}
	for _, tc := range []struct {
		name     string
		c        *Consumer
		received *recordingLoader
	}{
		{"grpc", &Consumer{transformer: grpcTransformer, loader: grpcLoader}, viaGRPC},
		{"in-process", &Consumer{transformer: inProcessClients{tr: tr}, loader: inProcessClients{l: inProcess}}, inProcess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			req := &transformv1.TransformRequest{}
			// What the consumer built before: the generated client's answer, its rows set.
			old, err := transformv1.NewTransformServiceClient(conn).Transform(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want := proto.CloneOf(header)
			want.Rows, want.Rejections = old.GetRows(), old.GetRejections()

			got, err := tc.c.transform(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.rows) != len(answer.Rows) || len(got.rejections) != len(answer.Rejections) {
				t.Fatalf("%d rows and %d rejections, want %d and %d", len(got.rows), len(got.rejections), len(answer.Rows), len(answer.Rejections))
			}
			sent := proto.CloneOf(header)
			sent.Rejections = got.rejections
			encoded, err := encodeLoadRequest(sent, got.rows)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tc.c.load(ctx, encoded); err != nil {
				t.Fatal(err)
			}
			if len(tc.received.received) != 1 {
				t.Fatalf("loader received %d requests, want 1", len(tc.received.received))
			}
			if received := tc.received.received[0]; !proto.Equal(received, want) {
				t.Errorf("loader decoded\n%v\nwant\n%v", received, want)
			}
			if len(want.GetRows()[0].ProtoReflect().GetUnknown()) == 0 {
				t.Error("the rows carry no unknown field: the test proves nothing about them")
			}
		})
	}
}

// A Transform answer the pass-through cannot read is an error, never rows made up.
func TestPassThroughRefusesABrokenAnswer(t *testing.T) {
	row := protowire.AppendBytes(protowire.AppendTag(nil, transformResponseRows, protowire.BytesType), []byte{0x0a, 0x01, 'x'})
	for name, b := range map[string][]byte{
		"truncated row":     row[:len(row)-1],
		"row as a varint":   protowire.AppendVarint(protowire.AppendTag(nil, transformResponseRows, protowire.VarintType), 1),
		"garbage rejection": protowire.AppendBytes(protowire.AppendTag(nil, transformResponseRejections, protowire.BytesType), []byte{0xff}),
		"truncated tag":     {0x80},
		"truncated unknown": protowire.AppendTag(nil, 7, protowire.Fixed64Type),
	} {
		if err := (&transformed{}).decode(b); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
	var ok transformed
	if err := ok.decode(row); err != nil || len(ok.rows) != 1 {
		t.Errorf("a row: %v, %d rows", err, len(ok.rows))
	}
}

// The pass-through reads TransformResponse and writes LoadRequest's rows by field number:
// a field added to either message must be looked at here (does it carry rows? must the
// consumer read it?) before the pass-through can be trusted with it.
func TestPassThroughKnowsEveryField(t *testing.T) {
	rowType := (&warehousev1.BattingGameRow{}).ProtoReflect().Descriptor().FullName()
	rejectionType := (&warehousev1.Rejection{}).ProtoReflect().Descriptor().FullName()
	check := func(md protoreflect.MessageDescriptor, want map[protowire.Number]string) {
		t.Helper()
		fields := md.Fields()
		if fields.Len() != len(want) {
			t.Errorf("%s has %d fields, the pass-through knows %d: look at the new ones in rows.go", md.FullName(), fields.Len(), len(want))
		}
		for i := range fields.Len() {
			fd := fields.Get(i)
			if name, ok := want[fd.Number()]; !ok || name != string(fd.Name()) {
				t.Errorf("%s field %d %s: the pass-through knows it as %q", md.FullName(), fd.Number(), fd.Name(), name)
			}
		}
	}
	transformResponse := (&transformv1.TransformResponse{}).ProtoReflect().Descriptor()
	check(transformResponse, map[protowire.Number]string{transformResponseRows: "rows", transformResponseRejections: "rejections"})
	loadRequest := (&loadv1.LoadRequest{}).ProtoReflect().Descriptor()
	check(loadRequest, map[protowire.Number]string{1: "stream", 2: "shard_id", 3: "expected_sequence_number", 4: "sequence_number",
		5: "shard_end", loadRequestRows: "rows", 7: "rejections", 8: "consumer_id", 9: "lease_token", 10: "gap"})
	for _, f := range []struct {
		fd   protoreflect.FieldDescriptor
		want protoreflect.FullName
	}{
		{transformResponse.Fields().ByNumber(transformResponseRows), rowType},
		{transformResponse.Fields().ByNumber(transformResponseRejections), rejectionType},
		{loadRequest.Fields().ByNumber(loadRequestRows), rowType},
	} {
		if f.fd == nil || !f.fd.IsList() || f.fd.Message() == nil || f.fd.Message().FullName() != f.want {
			t.Errorf("field %v: want a repeated %s", f.fd, f.want)
		}
	}
}

// BenchmarkRowsRoundTrip is one batch of 500 rows over gRPC, the transformer's answer to
// the loader's request: decoded and encoded again (the generated clients, as before), or
// passed through as bytes. The servers' work is the same in both; the difference is the
// consumer's.
func BenchmarkRowsRoundTrip(b *testing.B) {
	answer := &transformv1.TransformResponse{}
	for i := range 500 {
		row := &warehousev1.BattingGameRow{}
		fill(row.ProtoReflect(), i, 1)
		row.ProtoReflect().SetUnknown(nil)
		answer.Rows = append(answer.Rows, row)
	}
	tr := &scriptedTransformer{answer: answer}
	conn := serveRows(&testing.T{}, tr, discardingLoader{})
	header := &loadv1.LoadRequest{Stream: "stats", ShardId: "shardId-000000000001", ExpectedSequenceNumber: "4959", SequenceNumber: "4960", ConsumerId: "c", LeaseToken: 3}
	ctx := context.Background()
	b.Run("decoded", func(b *testing.B) {
		transformer, loader := transformv1.NewTransformServiceClient(conn), loadv1.NewLoadServiceClient(conn)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := transformer.Transform(ctx, &transformv1.TransformRequest{})
			if err != nil {
				b.Fatal(err)
			}
			req := proto.CloneOf(header)
			req.Rows, req.Rejections = resp.GetRows(), resp.GetRejections()
			if _, err := loader.Load(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("passed-through", func(b *testing.B) {
		transformer, loader := GRPCClients(conn, conn)
		c := &Consumer{transformer: transformer, loader: loader}
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.transform(ctx, &transformv1.TransformRequest{})
			if err != nil {
				b.Fatal(err)
			}
			req := proto.CloneOf(header)
			req.Rejections = resp.rejections
			encoded, err := encodeLoadRequest(req, resp.rows)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.load(ctx, encoded); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// discardingLoader answers every Load without looking at it (its decoding is gRPC's).
type discardingLoader struct {
	loadv1.UnimplementedLoadServiceServer
}

func (discardingLoader) Load(context.Context, *loadv1.LoadRequest) (*loadv1.LoadResponse, error) {
	return &loadv1.LoadResponse{}, nil
}
