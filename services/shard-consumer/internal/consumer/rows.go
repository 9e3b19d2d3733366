package consumer

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// The consumer only counts the transformer's rows and forwards them to the loader: it never
// looks inside one. So rows travel as the protobuf bytes the transformer wrote — taken out
// of the Transform answer without decoding them, and appended to the Load request without
// encoding them again — which saves the consumer a decode and an encode of every row.
//
// Field numbers of the two messages the pass-through reads and writes by hand;
// TestPassThroughKnowsEveryField fails when either message gains a field.
const (
	transformResponseRows       protowire.Number = 1
	transformResponseRejections protowire.Number = 2
	loadRequestRows             protowire.Number = 6
)

// rawRowsTransformer is a transformer client whose answer keeps rows as their encoding.
type rawRowsTransformer interface {
	transformRaw(ctx context.Context, req *transformv1.TransformRequest) (*transformed, error)
}

// rawRowsLoader is a loader client that sends a request already encoded.
type rawRowsLoader interface {
	loadEncoded(ctx context.Context, req []byte) (*loadv1.LoadResponse, error)
}

// transformed is a Transform answer whose rows are left encoded (one BattingGameRow each).
type transformed struct {
	rows       [][]byte
	rejections []*warehousev1.Rejection
}

// GRPCClients are the transformer's and the loader's clients over their connections, with
// the rows passed through as bytes (see rawRowsTransformer, rawRowsLoader). Every other
// call is the generated client's.
func GRPCClients(transformer, loader grpc.ClientConnInterface) (transformv1.TransformServiceClient, loadv1.LoadServiceClient) {
	return rawRowsTransformClient{TransformServiceClient: transformv1.NewTransformServiceClient(transformer), cc: transformer},
		rawRowsLoadClient{LoadServiceClient: loadv1.NewLoadServiceClient(loader), cc: loader}
}

type rawRowsTransformClient struct {
	transformv1.TransformServiceClient
	cc grpc.ClientConnInterface
}

func (t rawRowsTransformClient) transformRaw(ctx context.Context, req *transformv1.TransformRequest) (*transformed, error) {
	out := &transformed{}
	if err := t.cc.Invoke(ctx, transformv1.TransformService_Transform_FullMethodName, req, out, grpc.ForceCodecV2(passThroughCodec{})); err != nil {
		return nil, err
	}
	return out, nil
}

type rawRowsLoadClient struct {
	loadv1.LoadServiceClient
	cc grpc.ClientConnInterface
}

func (l rawRowsLoadClient) loadEncoded(ctx context.Context, req []byte) (*loadv1.LoadResponse, error) {
	out := &loadv1.LoadResponse{}
	if err := l.cc.Invoke(ctx, loadv1.LoadService_Load_FullMethodName, encodedMessage(req), out, grpc.ForceCodecV2(passThroughCodec{})); err != nil {
		return nil, err
	}
	return out, nil
}

// encodedMessage is a message already encoded, sent as is.
type encodedMessage []byte

// passThroughCodec is gRPC's protobuf codec, plus: an encodedMessage is sent as is, and a
// Transform answer is decoded into a *transformed. Its name is the protobuf codec's, so
// the content type on the wire does not change.
type passThroughCodec struct{}

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

func (passThroughCodec) Name() string { return grpcproto.Name }

func (passThroughCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(encodedMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	}
	return protoCodec.Marshal(v)
}

func (passThroughCodec) Unmarshal(data mem.BufferSlice, v any) error {
	out, ok := v.(*transformed)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	// One copy of the answer, out of gRPC's pooled buffers: the rows are slices of it and
	// live as long as the batch.
	return out.decode(data.Materialize())
}

// decode reads a TransformResponse: rows kept as their bytes, rejections decoded (the
// consumer reports them). Fields it does not know are skipped, as protobuf does.
func (t *transformed) decode(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("transform answer: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if (num == transformResponseRows || num == transformResponseRejections) && typ != protowire.BytesType {
			return fmt.Errorf("transform answer: field %d has wire type %d, want a message", num, typ)
		}
		switch num {
		case transformResponseRows:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("transform answer: row %d: %w", len(t.rows), protowire.ParseError(n))
			}
			t.rows = append(t.rows, v)
			b = b[n:]
		case transformResponseRejections:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("transform answer: rejection %d: %w", len(t.rejections), protowire.ParseError(n))
			}
			rej := &warehousev1.Rejection{}
			if err := proto.Unmarshal(v, rej); err != nil {
				return fmt.Errorf("transform answer: rejection %d: %w", len(t.rejections), err)
			}
			t.rejections = append(t.rejections, rej)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("transform answer: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

// transform calls the transformer: through the pass-through when the client has it,
// otherwise (an in-process client) through the generated call, its rows encoded here.
func (c *Consumer) transform(ctx context.Context, req *transformv1.TransformRequest) (*transformed, error) {
	if raw, ok := c.transformer.(rawRowsTransformer); ok {
		return raw.transformRaw(ctx, req)
	}
	resp, err := c.transformer.Transform(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &transformed{rows: make([][]byte, len(resp.GetRows())), rejections: resp.GetRejections()}
	for i, row := range resp.GetRows() {
		if out.rows[i], err = proto.Marshal(row); err != nil {
			return nil, fmt.Errorf("encode row %d: %w", i, err)
		}
	}
	return out, nil
}

// encodeLoadRequest is req (which holds no rows) with rows appended as its rows field. A
// message's encodings concatenated decode as the message merged, and a repeated field
// merges by appending: the loader decodes the rows in this order.
func encodeLoadRequest(req *loadv1.LoadRequest, rows [][]byte) ([]byte, error) {
	if len(req.GetRows()) > 0 {
		return nil, errors.New("load request: rows are appended encoded, not set")
	}
	size := proto.Size(req)
	for _, row := range rows {
		size += protowire.SizeTag(loadRequestRows) + protowire.SizeBytes(len(row))
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(make([]byte, 0, size), req)
	if err != nil {
		return nil, fmt.Errorf("encode load request: %w", err)
	}
	for _, row := range rows {
		b = protowire.AppendTag(b, loadRequestRows, protowire.BytesType)
		b = protowire.AppendBytes(b, row)
	}
	return b, nil
}

// load calls the loader with a request encoded by encodeLoadRequest: as is when the
// client takes one, otherwise (an in-process client) decoded from those bytes, so such a
// loader sees exactly what the real one decodes.
func (c *Consumer) load(ctx context.Context, encoded []byte) (*loadv1.LoadResponse, error) {
	if raw, ok := c.loader.(rawRowsLoader); ok {
		return raw.loadEncoded(ctx, encoded)
	}
	decoded := &loadv1.LoadRequest{}
	if err := proto.Unmarshal(encoded, decoded); err != nil {
		return nil, fmt.Errorf("decode load request: %w", err)
	}
	return c.loader.Load(ctx, decoded)
}
