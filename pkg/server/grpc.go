package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload"
)

// clientKeepaliveTime is how long a client connection may stay silent before the client
// pings it: a peer that vanished (a pod killed with its node, a network partition) is then
// noticed within clientKeepaliveTime+clientKeepaliveTimeout instead of at the next RPC's
// deadline. Servers allow pings at half this interval (New), so no GOAWAY too_many_pings.
const (
	clientKeepaliveTime    = 20 * time.Second
	clientKeepaliveTimeout = 10 * time.Second
)

// roundRobin spreads RPCs over every address the resolver returns. gRPC's default,
// pick_first, sends everything to the first address: behind a headless Service that is one
// pod per client, and the pods an autoscaler adds would sit idle.
const roundRobin = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// Dial returns a client connection to another Boxscore service, the one way services dial
// each other. target is a gRPC target: "host:port" is resolved by DNS (gRPC's default
// scheme for grpc.NewClient, i.e. dns:///host:port) and every address it resolves to gets
// connections, so a headless Kubernetes Service spreads calls over all its pods; full
// target URIs such as "dns://10.0.0.10:53/loader.boxscore.svc:9003" or "unix:///path" work
// too. Connections are lazy: Dial does not wait for the peer.
//
// Keepalive, balancing, message limits and tracing are decided here, so a change to how
// services talk is one edit. Dial itself is plaintext: services dial each other with
// Server.Dial (Service.Dial), which adds the service's mutual TLS when it has TLS files.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	defaults := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(roundRobin),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: clientKeepaliveTime, Timeout: clientKeepaliveTimeout, PermitWithoutStream: true,
		}),
		// Peers are in-cluster services that come back within seconds of a restart or a
		// network blip. gRPC's default reconnect back-off grows to 120 s, so a channel
		// that failed a few times in a row would stay down long after its peer is back;
		// capped at 2 s, a shard flows again within about that of its peer's return.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(limits.GRPCMessageBytes),
			grpc.MaxCallSendMsgSize(limits.GRPCMessageBytes),
		),
	}
	conn, err := grpc.NewClient(target, append(defaults, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", target, err)
	}
	return conn, nil
}

// serverKeepalive ages connections out (Config.MaxConnectionAge) so clients re-resolve and
// find new replicas. An RPC in flight when its connection ages out gets the shutdown
// timeout to finish: the same bound a graceful stop gives it.
func serverKeepalive(cfg Config) keepalive.ServerParameters {
	p := keepalive.ServerParameters{Time: 2 * clientKeepaliveTime, Timeout: clientKeepaliveTimeout}
	if cfg.MaxConnectionAge > 0 {
		p.MaxConnectionAge = cfg.MaxConnectionAge
		p.MaxConnectionAgeGrace = cfg.ShutdownTimeout
	}
	return p
}

// recoverUnary turns a handler's panic into an INTERNAL status and an error log line with
// the stack: one bad request must not take the process, and every other caller's work in
// flight, down with it.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = recovered(ctx, logger, info.FullMethod, p)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = recovered(ss.Context(), logger, info.FullMethod, p)
			}
		}()
		return handler(srv, ss)
	}
}

func recovered(ctx context.Context, logger *slog.Logger, method string, p any) error {
	logger.ErrorContext(ctx, "gRPC handler panicked", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "internal error in %s", method)
}

// Dial is the package's Dial with this service's transport security: with TLS files it
// presents the service's certificate (its identity) and verifies the server's against the
// CA bundle and the target's host name, reloading both when the files change; without,
// plaintext.
func (s *Server) Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return Dial(target, append([]grpc.DialOption{grpc.WithTransportCredentials(s.clientCredentials())}, opts...)...)
}

func (s *Server) clientCredentials() credentials.TransportCredentials {
	if s.tls == nil {
		return insecure.NewCredentials()
	}
	return reloadingClientCredentials{tls: s.tls}
}

// reloadingClientCredentials is gRPC's TLS with a configuration taken per handshake, so a
// new connection verifies the server against the CA bundle of that moment.
type reloadingClientCredentials struct {
	tls *tlsreload.Reloader
}

func (c reloadingClientCredentials) current() credentials.TransportCredentials {
	return credentials.NewTLS(c.tls.ClientConfig())
}

func (c reloadingClientCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.current().ClientHandshake(ctx, authority, conn)
}

func (c reloadingClientCredentials) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("client-side credentials used by a server")
}

func (c reloadingClientCredentials) Info() credentials.ProtocolInfo { return c.current().Info() }

func (c reloadingClientCredentials) Clone() credentials.TransportCredentials { return c }

// OverrideServerName is deprecated in gRPC; the name verified is the target's host.
func (c reloadingClientCredentials) OverrideServerName(string) error {
	return errors.New("server name override is not supported")
}
