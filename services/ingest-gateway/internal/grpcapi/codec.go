package grpcapi

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Codec is gRPC's protobuf codec with a faster reader of PutStats requests: install it on
// the server with grpc.ForceServerCodecV2(grpcapi.Codec{}).
//
// proto.Unmarshal reads a PutStatsRequest through reflection and allocates every event's
// messages, strings and optional counts one by one (about 30 allocations an event, a third
// of the gateway's allocations on the gRPC path). Most requests are in the common form —
// the fields of this version of the protocol, each well-formed — which decodePutStats reads
// with protowire into the messages of one block per request (statevent.EventParts, read by
// statevent.DecodeEvent, the transformer's decoder of the same events), every string a
// substring of one copy of the request. Anything else (an unknown field, a wrong wire type, invalid
// UTF-8, a truncated value) goes to proto.Unmarshal with the same bytes, so the request,
// or the error, is always proto.Unmarshal's (FuzzDecodePutStatsMatchesProto). Every
// other message, and every answer, is the protobuf codec's.
type Codec struct{}

// Name is the protobuf codec's: the content type clients send is unchanged.
func (Codec) Name() string { return "proto" }

// Marshal is the protobuf codec's.
func (Codec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec().Marshal(v) }

// Unmarshal reads a PutStatsRequest with decodePutStats, anything else (or a request it
// cannot read) as the protobuf codec does.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*ingestv1.PutStatsRequest)
	if !ok {
		return protoCodec().Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	proto.Reset(req)
	if events, ok := decodePutStats(b); ok {
		req.Events = events
		return nil
	}
	proto.Reset(req)
	return proto.Unmarshal(b, req) // as the protobuf codec does, error included
}

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// decodePutStats reads the events of a PutStatsRequest in the common form; ok is false when
// b is not one (it may still be a request proto.Unmarshal reads, or none at all).
func decodePutStats(b []byte) (events []*statsv1.StatEvent, ok bool) {
	// Count the events first, so that their messages are one allocation.
	count := 0
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		rest = rest[n:]
		_, n = protowire.ConsumeBytes(rest)
		if n < 0 {
			return nil, false
		}
		rest = rest[n:]
		count++
	}
	if count == 0 {
		return nil, true
	}
	// One copy of the request for every string of its events, as proto.Unmarshal copies each.
	text := string(b)
	parts := make([]statevent.EventParts, count)
	events = make([]*statsv1.StatEvent, count)
	rest := b
	for i := range parts {
		_, _, n := protowire.ConsumeTag(rest)
		rest = rest[n:]
		v, n := protowire.ConsumeBytes(rest)
		if !statevent.DecodeEvent(text, v, len(b)-len(rest)+n-len(v), &parts[i]) {
			return nil, false
		}
		rest = rest[n:]
		events[i] = parts[i].Event()
	}
	return events, true
}
