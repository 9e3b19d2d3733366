package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload/tlstest"
)

// pingMethod is the one method of a test service: any method other than gRPC health,
// which every caller may reach.
const pingMethod = "/boxscore.test.Pinger/Ping"

type pinger interface{}

var pingerDesc = grpc.ServiceDesc{
	ServiceName: "boxscore.test.Pinger",
	HandlerType: (*pinger)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Ping",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			var in emptypb.Empty
			if err := dec(&in); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, _ any) (any, error) {
				if id, ok := server.PeerIdentity(ctx); !ok || id == "" {
					return nil, status.Error(codes.Internal, "handler reached without an identity")
				}
				return &emptypb.Empty{}, nil
			}
			if interceptor == nil {
				return handler(ctx, &in)
			}
			return interceptor(ctx, &in, &grpc.UnaryServerInfo{Server: srv, FullMethod: pingMethod}, handler)
		},
	}},
}

func mustCA(t *testing.T, name string) *tlstest.CA {
	t.Helper()
	ca, err := tlstest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustWrite(t *testing.T, ca *tlstest.CA, dir, cn string, bundle []byte) tlsreload.Files {
	t.Helper()
	files, err := ca.Write(dir, cn, bundle, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func tlsConfig(files tlsreload.Files, clients ...string) server.Config {
	return server.Config{
		GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		Security: server.Security{TLSCertFile: files.Cert, TLSKeyFile: files.Key, TLSCAFile: files.CA, GRPCClients: clients},
	}
}

// startTLS runs a server with the ping service and returns its gRPC address.
func startTLS(t *testing.T, cfg server.Config, logger *slog.Logger) string {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := server.New(cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.GRPC().RegisterService(&pingerDesc, struct{}{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-srv.Listening()
	return srv.GRPCAddr()
}

// client is a service that only dials: its Server is never run, its Dial is the one a
// service uses.
func client(t *testing.T, files tlsreload.Files) *server.Server {
	t.Helper()
	srv, err := server.New(tlsConfig(files), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// call makes one Ping on a new connection.
func call(t *testing.T, dial dialFunc, addr, method string) error {
	t.Helper()
	conn, err := dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if method == pingMethod {
		return conn.Invoke(ctx, pingMethod, &emptypb.Empty{}, &emptypb.Empty{})
	}
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

type dialFunc = func(string, ...grpc.DialOption) (*grpc.ClientConn, error)

func dialWith(creds credentials.TransportCredentials) dialFunc {
	return func(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
		return server.Dial(addr, append(opts, grpc.WithTransportCredentials(creds))...)
	}
}

func TestMutualTLSAdmitsOnlyAllowedIdentitiesOfTheCA(t *testing.T) {
	dir := t.TempDir()
	ca, other := mustCA(t, "boxscore"), mustCA(t, "someone else")
	addr := startTLS(t, tlsConfig(mustWrite(t, ca, dir, "loader", nil), "shard-consumer"), nil)

	consumer := client(t, mustWrite(t, ca, dir, "shard-consumer", nil))
	if err := call(t, consumer.Dial, addr, pingMethod); err != nil {
		t.Errorf("allowed identity: %v, want OK", err)
	}

	transformer := client(t, mustWrite(t, ca, dir, "transformer", nil))
	err := call(t, transformer.Dial, addr, pingMethod)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"transformer"`) || !strings.Contains(err.Error(), "shard-consumer") {
		t.Errorf("another identity of the CA: %v, want PERMISSION_DENIED naming the caller and the allowed identities", err)
	}
	if err := call(t, transformer.Dial, addr, "health"); err != nil {
		t.Errorf("health from another identity: %v, want OK (health is open to probes)", err)
	}

	// A certificate of another CA, with the right name, trusting the server's CA.
	impostor := client(t, mustWrite(t, other, t.TempDir(), "shard-consumer", ca.PEM()))
	if err := call(t, impostor.Dial, addr, pingMethod); err == nil || status.Code(err) == codes.PermissionDenied {
		t.Errorf("certificate of another CA: %v, want the handshake refused", err)
	}
	if err := call(t, impostor.Dial, addr, "health"); err == nil {
		t.Error("health with a certificate of another CA: OK, want the handshake refused")
	}

	// TLS without a client certificate.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())
	noCert := dialWith(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	if err := call(t, noCert, addr, pingMethod); err == nil || status.Code(err) == codes.PermissionDenied {
		t.Errorf("no client certificate: %v, want the handshake refused", err)
	}
	if err := call(t, dialWith(insecure.NewCredentials()), addr, "health"); err == nil {
		t.Error("plaintext client: OK, want refused")
	}

	// The client verifies the server: a server of another CA is refused by a good client.
	otherAddr := startTLS(t, tlsConfig(mustWrite(t, other, t.TempDir(), "loader", nil)), nil)
	if err := call(t, consumer.Dial, otherAddr, "health"); err == nil {
		t.Error("server of another CA: OK, want the client to refuse it")
	}
}

func TestOptionalClientCertificateStillVerifiesOneGiven(t *testing.T) {
	dir := t.TempDir()
	ca, other := mustCA(t, "boxscore"), mustCA(t, "someone else")
	cfg := tlsConfig(mustWrite(t, ca, dir, "ingest-gateway", nil))
	cfg.ClientCertOptional = true
	addr := startTLS(t, cfg, nil)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())
	if err := call(t, dialWith(credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})), addr, "health"); err != nil {
		t.Errorf("no client certificate on an optional server: %v, want OK", err)
	}
	impostor := client(t, mustWrite(t, other, t.TempDir(), "shard-consumer", ca.PEM()))
	if err := call(t, impostor.Dial, addr, "health"); err == nil {
		t.Error("certificate of another CA on an optional server: OK, want refused")
	}
}

// syncBuffer is a log destination read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestCertificateRotationWithoutRestart(t *testing.T) {
	serverDir, clientDir, staleDir := t.TempDir(), t.TempDir(), t.TempDir()
	oldCA, newCA := mustCA(t, "boxscore 2026"), mustCA(t, "boxscore 2027")
	serverFiles := mustWrite(t, oldCA, serverDir, "loader", nil)
	clientFiles := mustWrite(t, oldCA, clientDir, "shard-consumer", nil)
	stale := client(t, mustWrite(t, oldCA, staleDir, "shard-consumer", nil)) // never rotated
	var log syncBuffer
	addr := startTLS(t, tlsConfig(serverFiles, "shard-consumer"), slog.New(slog.NewTextHandler(&log, nil)))
	consumer := client(t, clientFiles)
	if err := call(t, consumer.Dial, addr, pingMethod); err != nil {
		t.Fatalf("before rotation: %v", err)
	}

	// A rotation caught half way: a truncated certificate. The last good pair keeps serving.
	if err := tlstest.WriteFile(serverFiles.Cert, []byte("-----BEGIN CERTIFICATE-----\nMIIB")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(tlsreload.CheckInterval + 100*time.Millisecond)
	if err := call(t, consumer.Dial, addr, pingMethod); err != nil {
		t.Fatalf("with a half-written certificate file: %v, want the previous certificate still served", err)
	}
	if !strings.Contains(log.String(), "cannot be loaded") {
		t.Errorf("a failed reload is not logged:\n%s", log.String())
	}

	// The real rotation: new CA, new pairs for both sides, in place.
	mustWrite(t, newCA, serverDir, "loader", nil)
	mustWrite(t, newCA, clientDir, "shard-consumer", nil)
	time.Sleep(tlsreload.CheckInterval + 100*time.Millisecond)
	if err := call(t, consumer.Dial, addr, pingMethod); err != nil {
		t.Fatalf("after rotation, new connection: %v, want OK with the new certificates", err)
	}
	// The rotation is real: a client still on the old CA's files is now refused.
	if err := call(t, stale.Dial, addr, pingMethod); err == nil {
		t.Fatal("a client with the old CA's certificate is still admitted after the rotation")
	}
	if !strings.Contains(log.String(), "TLS files reloaded") {
		t.Errorf("the reload is not logged:\n%s", log.String())
	}
}

func TestStartFailsOnMissingOrPartialTLSFiles(t *testing.T) {
	dir := t.TempDir()
	files := mustWrite(t, mustCA(t, "boxscore"), dir, "loader", nil)
	partial := tlsConfig(files)
	partial.TLSKeyFile = ""
	if err := partial.Validate(); err == nil || !strings.Contains(err.Error(), "all three") {
		t.Errorf("Validate with two of three TLS files = %v, want an error", err)
	}
	missing := tlsConfig(files)
	missing.TLSCAFile = filepath.Join(dir, "absent.crt")
	if _, err := server.New(missing, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err == nil {
		t.Error("New with a missing CA file succeeded")
	}
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := tlsConfig(files)
	bad.TLSCAFile = garbage
	if _, err := server.New(bad, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err == nil {
		t.Error("New with a CA file holding no certificate succeeded")
	}
}

func TestPlaintextBeyondLoopbackNeedsInsecure(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--grpc-addr", "0.0.0.0:0"}, server.ExitUsage},
		{[]string{"--grpc-addr", ":9003"}, server.ExitUsage},
		{[]string{"--grpc-addr", "0.0.0.0:0", "--insecure"}, server.ExitOK},
		{[]string{"--grpc-addr", "127.0.0.1:0"}, server.ExitOK},
		{[]string{"--grpc-addr", "localhost:0"}, server.ExitOK},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var cfg testConfig
			var stdout, stderr bytes.Buffer
			code := server.Run(t.Context(), testSpec, &cfg, noSetup(t), append(tc.args, "--print-config"), &stdout, &stderr)
			if code != tc.want {
				t.Fatalf("exit %d, want %d: %s", code, tc.want, stderr.String())
			}
			if tc.want == server.ExitUsage && !strings.Contains(stderr.String(), "--insecure") {
				t.Errorf("refusal does not say how to proceed: %s", stderr.String())
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		t.Setenv("BOXSCORE_GRPC_ADDR", "0.0.0.0:0")
		t.Setenv("BOXSCORE_INSECURE", "true")
		var cfg testConfig
		var stdout, stderr bytes.Buffer
		if code := server.Run(t.Context(), testSpec, &cfg, noSetup(t), []string{"--print-config"}, &stdout, &stderr); code != server.ExitOK {
			t.Fatalf("BOXSCORE_INSECURE=true: exit %d: %s", code, stderr.String())
		}
	})
	cfg := server.Config{GRPCAddr: "0.0.0.0:0", AdminAddr: "127.0.0.1:0", ShutdownTimeout: time.Second}
	if _, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err == nil {
		t.Error("New on 0.0.0.0 without TLS or Insecure succeeded")
	}
}

func TestGRPCClientsDefaultFromSpecAndEnv(t *testing.T) {
	spec := testSpec
	spec.GRPCClients = []string{"shard-consumer"}
	var cfg testConfig
	var stdout, stderr bytes.Buffer
	if code := server.Run(t.Context(), spec, &cfg, noSetup(t), []string{"--print-config"}, &stdout, &stderr); code != server.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := cfg.Server.GRPCClients; len(got) != 1 || got[0] != "shard-consumer" {
		t.Errorf("grpc-clients default = %q, want the spec's [shard-consumer]", got)
	}
	t.Setenv("BOXSCORE_GRPC_CLIENTS", "shard-consumer,ops")
	cfg = testConfig{}
	if code := server.Run(t.Context(), spec, &cfg, noSetup(t), []string{"--print-config"}, &stdout, &stderr); code != server.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := cfg.Server.GRPCClients; len(got) != 2 || got[1] != "ops" {
		t.Errorf("grpc-clients from BOXSCORE_GRPC_CLIENTS = %q, want [shard-consumer ops]", got)
	}
}

func runPlain(t *testing.T, mutate func(*server.Config), logger *slog.Logger) *server.Server {
	t.Helper()
	cfg := server.Config{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := server.New(cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func serveUntilCleanup(t *testing.T, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-srv.Listening()
}

func TestPprofAndReflectionOffByDefault(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("enabled=%v", on), func(t *testing.T) {
			srv := runPlain(t, func(c *server.Config) { c.Pprof, c.GRPCReflection = on, on }, nil)
			serveUntilCleanup(t, srv)
			code, _ := get(t, "http://"+srv.AdminAddr()+"/debug/pprof/")
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; code != want {
				t.Errorf("/debug/pprof/ = %d, want %d", code, want)
			}

			conn, err := server.Dial(srv.GRPCAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			if err == nil {
				err = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
				if errors.Is(err, io.EOF) {
					// The server ended the stream before the request went out (UNIMPLEMENTED
					// comes back at once): gRPC reports why on Recv, not on Send.
					err = nil
				}
			}
			if err == nil {
				_, err = stream.Recv()
			}
			if on && err != nil {
				t.Errorf("reflection enabled: %v", err)
			}
			if !on && status.Code(err) != codes.Unimplemented {
				t.Errorf("reflection by default: %v, want UNIMPLEMENTED", err)
			}
		})
	}
}

func TestReadyzShowsOnlyPublicReasons(t *testing.T) {
	const leak = "operation error Kinesis: DescribeStreamSummary, https response error StatusCode: 400, ResourceNotFoundException: Stream boxscore-stats under account 123456789012 not found (arn:aws:kinesis:eu-west-1:123456789012:stream/boxscore-stats)"
	var log syncBuffer
	srv := runPlain(t, nil, slog.New(slog.NewTextHandler(&log, nil)))
	var mu sync.Mutex
	failure := errors.New(leak)
	srv.AddReadyCheck("stream boxscore-stats", func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return failure
	})
	serveUntilCleanup(t, srv)
	readyz := "http://" + srv.AdminAddr() + "/readyz"

	for range 3 {
		code, body := get(t, readyz)
		if code != http.StatusServiceUnavailable || body != "not ready: stream boxscore-stats: unavailable (see logs)\n" {
			t.Fatalf("/readyz = %d %q, want 503 with a generic reason", code, body)
		}
	}
	if n := strings.Count(log.String(), "123456789012 not found"); n != 1 {
		t.Errorf("the full error is logged %d times over several probes, want once (on change):\n%s", n, log.String())
	}

	mu.Lock()
	failure = fmt.Errorf("%w: %w", server.PublicReason("stream not found"), errors.New(leak))
	mu.Unlock()
	code, body := get(t, readyz)
	if code != http.StatusServiceUnavailable || body != "not ready: stream boxscore-stats: stream not found\n" {
		t.Errorf("/readyz with a public reason = %d %q", code, body)
	}
	if strings.Contains(body, "123456789012") {
		t.Errorf("/readyz leaks the account id: %q", body)
	}

	mu.Lock()
	failure = nil
	mu.Unlock()
	if code, body := get(t, readyz); code != http.StatusOK {
		t.Errorf("/readyz after recovery = %d %q", code, body)
	}
	if !strings.Contains(log.String(), "passes again") {
		t.Errorf("the recovery is not logged:\n%s", log.String())
	}
}
