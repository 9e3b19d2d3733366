package grpcapi

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/tap"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/tracetrust"
)

// Tap runs when a PutStats stream opens, before gRPC reads its message (install Handle with
// grpc.InTapHandle). gRPC reads a whole message before a handler runs, so this is where a
// message is counted against the in-flight budget before it is held: each stream reserves
// the largest message (MaxRequestBytes) or is refused UNAVAILABLE at once, and gives it back
// when it ends, whatever way it ends. So the messages gRPC holds, being read or handled, are
// within --publish-max-inflight-bytes however many connections and streams clients open.
//
// It also refuses a missing credential or a wrong API key (UNAUTHENTICATED) and a producer
// over its quota (RESOURCE_EXHAUSTED) before anything is read, cuts off a stream whose
// message has not arrived within the body read timeout, and takes the caller's trace context
// out of the metadata unless it is trusted, so that the server span is a new root (a link
// to the caller's span is added by PutStats) and baggage is capped.
//
// The tap runs on the connection's reader goroutine, under the transport's lock: everything
// here is quick and never waits (JWTs, which may need a JWKS fetch, are checked in PutStats).
type Tap struct {
	Svc         *ingest.Service
	Auth        *auth.Authenticator
	Server      *Server
	ReadTimeout time.Duration
	TrustTrace  bool
}

type tapStateKey struct{}

// tapState is what the tap hands to PutStats through the stream's context.
type tapState struct {
	res       *ingest.Reservation
	principal *auth.Principal // nil: a JWT, checked by PutStats
	remote    trace.SpanContext
	once      sync.Once
	timer     *time.Timer
	cancel    context.CancelFunc
}

// started stops the read timer: the message arrived.
func (s *tapState) started() {
	s.once.Do(func() {
		if s.timer != nil {
			s.timer.Stop()
		}
	})
}

func tapStateFrom(ctx context.Context) *tapState {
	st, _ := ctx.Value(tapStateKey{}).(*tapState)
	return st
}

// Handle is the grpc.InTapHandle function.
func (t *Tap) Handle(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != ingestv1.IngestService_PutStats_FullMethodName {
		return ctx, nil // health and reflection: nothing to reserve
	}
	st := &tapState{}
	principal, known, err := t.Auth.AuthenticateKey(first(info.Header, "authorization"))
	if err != nil {
		t.Svc.Refused(ctx, nil, ingest.KindUnauthenticated)
		return ctx, t.Server.status(ctx, &ingest.Error{Kind: ingest.KindUnauthenticated, Err: err}).Err()
	}
	if known {
		st.principal = principal
		if err := t.Svc.Admit(ctx, ingest.Caller{Principal: principal}); err != nil {
			return ctx, t.Server.status(ctx, err).Err()
		}
	}
	// A JWT's producer is known only in PutStats: such streams share the share of "".
	producer := ""
	if st.principal != nil {
		producer = st.principal.Producer
	}
	res, err := t.Svc.ReserveFor(producer, MaxRequestBytes)
	if err != nil {
		return ctx, t.Server.status(ctx, err).Err()
	}
	st.res = res
	// The stream's own context ends when the stream does; this one also when the message
	// is late. gRPC reads the message under the context the tap returns.
	ctx, st.cancel = context.WithCancel(ctx) //nolint:gosec // called by the read timer; otherwise the stream's own end cancels ctx
	// The stream's context ends when the stream does (also when it is reset before its
	// message was read, and PutStats never runs): the reservation goes back then at the
	// latest. Release is idempotent, so PutStats releasing it first is fine.
	context.AfterFunc(ctx, res.Release)
	if t.ReadTimeout > 0 {
		// A message that trickles in holds its reservation until it is cut off here.
		st.timer = time.AfterFunc(t.ReadTimeout, func() { st.once.Do(st.cancel) })
	}

	md := metadata.MD(info.Header).Copy()
	if !t.TrustTrace {
		carrier := propagation.HeaderCarrier{}
		for _, k := range []string{"traceparent", "tracestate"} {
			if v := first(md, k); v != "" {
				carrier.Set(k, v)
			}
			delete(md, k)
		}
		st.remote = trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
	}
	if b := first(md, "baggage"); b != "" {
		if capped := tracetrust.CapHeader(b); capped != "" {
			md.Set("baggage", capped)
		} else {
			delete(md, "baggage")
		}
	}
	ctx = metadata.NewIncomingContext(ctx, md)
	return context.WithValue(ctx, tapStateKey{}, st), nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// authorization is the caller's authorization metadata.
func authorization(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return first(md, "authorization")
}
