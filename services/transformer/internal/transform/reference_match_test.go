package transform

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"

	"github.com/boxscore-dev/boxscore/pkg/testutil/fuzzcorpus"
)

// checkTransformMatchesReference fails t when Transform answers records otherwise than
// the transform before statevent.DecodedRecord (referenceTransform) did.
func checkTransformMatchesReference(t *testing.T, records []*transformv1.SourceRecord) {
	t.Helper()
	got, want := Transform(records), referenceTransform(records)
	if !proto.Equal(got, want) {
		t.Fatalf("Transform of %d records:\n%v\nthe reference gives:\n%v", len(records), got, want)
	}
}

// referenceCorpora are the record bodies of the transformer's and statevent's fuzz corpora.
var referenceCorpora = []string{
	"testdata/fuzz/FuzzTransform",
	"../../../../pkg/statevent/testdata/fuzz/FuzzDecodeEnvelope",
}

// referenceSeeds are record bodies that reach every outcome of the transform: rows of
// lines and retractions, each kind of rejection, trace contexts the fast trace id path
// reads and those it leaves to the propagator, and envelopes written in forms no encoder
// writes (duplicated and merged fields, unknown fields).
func referenceSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	add := func(ev *statsv1.StatEvent, producer string, at time.Time, traceContext map[string]string) []byte {
		data, err := statevent.EncodeProducerEnvelope(ev, producer, at, traceContext)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, data)
		return data
	}
	gateway := add(validEvent(), "scorer", testAcceptedAt, map[string]string{"traceparent": testTraceparent})
	add(retractionEvent(), "ops", testAcceptedAt, nil)
	add(validEvent(), "", testAcceptedAt, map[string]string{"traceparent": testTraceparent, "tracestate": "a=b"})
	add(validEvent(), "", testAcceptedAt, map[string]string{"traceparent": strings.ToUpper(testTraceparent)})
	add(validEvent(), "", testAcceptedAt, map[string]string{"traceparent": "01" + testTraceparent[2:] + "-later"})
	add(validEvent(), "", testAcceptedAt, map[string]string{"traceparent": "junk", "baggage": "k=v"})
	add(validEvent(), "", time.Time{}, nil)
	lower := validEvent()
	lower.Player.Team, lower.Game.Opponent, lower.Player.Name = " lad", "sd ", "Jose\u0301"
	add(lower, "p", testAcceptedAt, nil)
	versionless := validEvent()
	versionless.Version = 0
	versionless.SourceTime = timestamppb.New(testAcceptedAt.Add(-time.Hour))
	add(versionless, "p", testAcceptedAt, nil)
	noID := validEvent()
	noID.EventId = ""
	add(noID, "p", testAcceptedAt, nil)
	inconsistent := validEvent()
	inconsistent.Batting.Hits = proto.Int32(9)
	add(inconsistent, "p", testAcceptedAt, nil)
	control := validEvent()
	control.Player.Name = "a\u0085b"
	add(control, strings.Repeat("p", MaxProducerLength+1), testAcceptedAt, nil)

	// Fields an encoder never duplicates: the last scalar wins, messages merge, unknown
	// fields are kept by proto.Unmarshal and so go to DecodeEnvelope.
	field := func(num protowire.Number, value []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), value)
	}
	idTwice := append(append([]byte(nil), gateway...), field(3, []byte("other-id"))...)
	seeds = append(seeds, idTwice,
		append(append([]byte(nil), gateway...), field(5, field(2, []byte(strings.ToUpper(testTraceparent))))...),
		append(append([]byte(nil), gateway...), field(4, protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1<<31))...),
		append(append([]byte(nil), gateway...), protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)...),
	)
	// Every prefix of the gateway's record, and every single-byte change of it.
	for i := range gateway {
		seeds = append(seeds, gateway[:i])
		for _, c := range []byte{0x00, 0x01, 0x02, 0x0a, 0x20, 0x7f, 0x80, 0xff} {
			mutated := append([]byte(nil), gateway...)
			mutated[i] = c
			seeds = append(seeds, mutated)
		}
	}
	for _, dir := range referenceCorpora {
		seeds = append(seeds, fuzzcorpus.Bytes(tb, dir)...)
	}
	return seeds
}

func TestTransformMatchesReference(t *testing.T) {
	t.Parallel()
	seeds := referenceSeeds(t)
	for _, data := range seeds {
		checkTransformMatchesReference(t, []*transformv1.SourceRecord{{Position: position(1), PartitionKey: "1", Data: data}})
	}
	// All of them in one request: rows and rejections interleaved, every record decoded
	// into the request's shared storage.
	records := make([]*transformv1.SourceRecord, len(seeds))
	for i, data := range seeds {
		records[i] = &transformv1.SourceRecord{Position: position(i + 1), PartitionKey: "1", Data: data}
	}
	checkTransformMatchesReference(t, records)
	// A position a newer consumer extended travels on unchanged.
	extended := position(1)
	extended.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	checkTransformMatchesReference(t, []*transformv1.SourceRecord{{Position: extended, Data: seeds[0]}, {Position: extended, Data: nil}})
}

// FuzzTransformMatchesReference checks that Transform answers any record as the
// transform before statevent.DecodedRecord did: the same row or the same rejection.
func FuzzTransformMatchesReference(f *testing.F) {
	for _, data := range referenceSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkTransformMatchesReference(t, []*transformv1.SourceRecord{{Position: position(1), PartitionKey: "1", Data: data}})
	})
}
