package transform

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
)

// propagatorTraceID is what TraceID answered before its fast path: the propagator alone.
func propagatorTraceID(traceparent string) string {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

func TestTraceIDFastPathAgreesWithThePropagator(t *testing.T) {
	t.Parallel()
	cases := []string{
		testTraceparent,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-10",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
	}
	// Single-byte mutations of a valid header: every position, characters around the
	// boundaries of hex and of the delimiter.
	rng := rand.New(rand.NewPCG(13, 13))
	alphabet := "0139afgAF-_ "
	for range 2000 {
		b := []byte(testTraceparent)
		b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
		cases = append(cases, string(b))
	}
	for _, h := range cases {
		if got, want := TraceID(map[string]string{"traceparent": h}), propagatorTraceID(h); got != want {
			t.Errorf("TraceID(%q) = %q, the propagator says %q", h, got, want)
		}
	}
}

func TestClonePositionCopiesEveryField(t *testing.T) {
	t.Parallel()
	p := &streamv1.RecordPosition{}
	m := p.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
			t.Fatalf("RecordPosition.%s is not a string: set it in this test and copy it in clonePosition", fd.Name())
		}
		m.Set(fd, protoreflect.ValueOfString("value of "+string(fd.Name())))
	}
	m.SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	c := clonePosition(p)
	if !proto.Equal(c, p) || c == p {
		t.Errorf("clonePosition(%v) = %v, want an equal copy", p, c)
	}
	if !strings.Contains(c.String(), "value of") {
		t.Errorf("clone %v lost the values", c)
	}
	if clonePosition(nil) != nil {
		t.Error("clonePosition(nil) is not nil")
	}
}
