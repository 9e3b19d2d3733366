package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload/tlstest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// tlsClient is a caller with its own transport: a certificate (or none) and the CA bundle
// it trusts.
type tlsClient struct {
	name  string
	creds credentials.TransportCredentials
}

func certClient(t *testing.T, name string, issuer *tlstest.CA, commonName string, trusted []byte) tlsClient {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(trusted)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if issuer != nil {
		certPEM, keyPEM, err := issuer.Issue(commonName, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Presented whatever CAs the server asks for: Go's client otherwise sends no
		// certificate at all when its issuer is not among them.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return tlsClient{name: name, creds: credentials.NewTLS(cfg)}
}

func (c tlsClient) conn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func rpcContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// With mutual TLS on, the pipeline delivers exactly once, and the internal services admit
// only callers with a certificate of the deployment's CA and, for the loader's and the
// transformer's methods, the consumer's identity. The hostile calls come first: a
// ClaimShard that got through with the largest lease token would fence the shard's real
// consumer out for good, and the delivery after it would stall. Then every certificate
// and the CA are replaced while the services run: they take the new files without a
// restart, refuse the old CA, and keep delivering.
func TestMutualTLSBetweenServices(t *testing.T) {
	// Connections age out every 2 s, so the consumer makes new ones (new handshakes) all
	// along, and soon after a rotation.
	age := []string{"--grpc-max-connection-age", "2s"}
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2, Config: stack.Config{TLS: true,
		Env: map[string][]string{stack.Loader: age, stack.Transformer: age}}})
	p.StartAll()
	ca := p.CA()
	other, err := tlstest.NewCA("another deployment")
	if err != nil {
		t.Fatal(err)
	}
	loaderAddr := p.Ports(stack.Loader).GRPCAddr()
	transformerAddr := p.Ports(stack.Transformer).GRPCAddr()
	consumerAddr := p.Ports(stack.Consumer).GRPCAddr()
	gatewayAddr := p.Ports(stack.Gateway).GRPCAddr()

	noCert := certClient(t, "no client certificate", nil, "", ca.PEM())
	otherCA := certClient(t, "certificate of another CA", other, "shard-consumer", ca.PEM())
	plaintext := tlsClient{name: "plaintext", creds: insecure.NewCredentials()}
	asTransformer := certClient(t, "transformer identity", ca, "transformer", ca.PEM())
	asConsumer := certClient(t, "shard-consumer identity", ca, "shard-consumer", ca.PEM())

	hostileClaim := &loadv1.ClaimShardRequest{Stream: p.Stream, ShardId: "shardId-000000000000", LeaseToken: math.MaxInt64, Owner: "attacker"}
	for _, c := range []tlsClient{noCert, otherCA, plaintext} {
		_, err := loadv1.NewLoadServiceClient(c.conn(t, loaderAddr)).ClaimShard(rpcContext(t), hostileClaim)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("loader ClaimShard, %s: %v, want the connection refused (UNAVAILABLE)", c.name, err)
		}
		_, err = transformv1.NewTransformServiceClient(c.conn(t, transformerAddr)).Transform(rpcContext(t), &transformv1.TransformRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("transformer Transform, %s: %v, want the connection refused (UNAVAILABLE)", c.name, err)
		}
		_, err = healthpb.NewHealthClient(c.conn(t, consumerAddr)).Check(rpcContext(t), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("shard-consumer health, %s: %v, want the connection refused (UNAVAILABLE)", c.name, err)
		}
	}

	// A certificate of the CA with another identity: the transport is fine, the methods
	// are not its to call.
	_, err = loadv1.NewLoadServiceClient(asTransformer.conn(t, loaderAddr)).ClaimShard(rpcContext(t), hostileClaim)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"transformer"`) {
		t.Errorf("loader ClaimShard as transformer: %v, want PERMISSION_DENIED naming the identity", err)
	}
	_, err = transformv1.NewTransformServiceClient(asTransformer.conn(t, transformerAddr)).Transform(rpcContext(t), &transformv1.TransformRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("transformer Transform as transformer: %v, want PERMISSION_DENIED", err)
	}
	// Health stays open to any verified caller (probes), and the consumer's identity is
	// admitted.
	if _, err := healthpb.NewHealthClient(asTransformer.conn(t, loaderAddr)).Check(rpcContext(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("loader health as transformer: %v, want OK", err)
	}
	if _, err := loadv1.NewLoadServiceClient(asConsumer.conn(t, loaderAddr)).GetCheckpoint(rpcContext(t), &loadv1.GetCheckpointRequest{Stream: p.Stream, ShardId: "shardId-000000000000"}); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unavailable {
		t.Errorf("loader GetCheckpoint as shard-consumer: %v, want admitted", err)
	}
	// The gateway's gRPC authenticates producers by API key or token, not certificate: a
	// TLS client without a certificate completes the handshake.
	if _, err := healthpb.NewHealthClient(noCert.conn(t, gatewayAddr)).Check(rpcContext(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("gateway health without a client certificate: %v, want OK", err)
	}
	if _, err := healthpb.NewHealthClient(otherCA.conn(t, gatewayAddr)).Check(rpcContext(t), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("gateway health with a certificate of another CA: %v, want refused", err)
	}

	// The pipeline itself, every internal call over mutual TLS.
	led := stack.NewLedger()
	producer := stack.NewProducer(p.GatewayURL(), led)
	players := stack.PlayersOverShards(t, p.Kinesis, p.Stream, 670000, 2)
	lines := season(rand.New(rand.NewPCG(2026, 12)), players, 12)
	half := len(lines) / 2
	mustSend(t, producer, lines[:half], false)
	mustSend(t, producer, lines[:half], false) // a retried request: same ids, no second row
	mustSend(t, producer, lines[half:], true)
	expected := map[string]bool{}
	for _, l := range led.Accepted() {
		expected[l.Key()] = true
	}
	p.WaitFor(90*time.Second, "every line in the warehouse over mutual TLS", func() bool {
		return p.Count("SELECT count(*) FROM boxscore.fact_batting_game") >= len(expected) && p.CheckpointsAt(led.Acked())
	})
	if rows := p.AssertExactlyOnce(led); len(rows) != len(expected) {
		t.Fatalf("fact rows = %d, want %d", len(rows), len(expected))
	}
	p.AssertEveryShardUsed(led)
	if log := p.Log(stack.Consumer); strings.Contains(log, "PermissionDenied") || strings.Contains(log, "authentication handshake failed") {
		t.Errorf("the consumer was refused by a service it calls before any rotation:\n%s", p.LogTail(stack.Consumer, 20))
	}

	// Rotation: new CA, new certificates for every service, written over the old files.
	procs := map[string]*stack.Process{}
	for _, name := range stack.Services {
		procs[name] = p.Current(name)
	}
	rotatedCA, err := tlstest.NewCA("boxscore rotated")
	if err != nil {
		t.Fatal(err)
	}
	p.RotateCertificates(rotatedCA)
	// A service looks at its files at most once per CheckInterval, on a handshake: after
	// that long, its next handshake uses the new ones.
	time.Sleep(tlsreload.CheckInterval + 200*time.Millisecond)
	rotatedConsumer := certClient(t, "shard-consumer identity of the new CA", rotatedCA, "shard-consumer", rotatedCA.PEM())
	p.WaitFor(30*time.Second, "the loader serving and admitting the new CA's certificates", func() bool {
		_, err := loadv1.NewLoadServiceClient(rotatedConsumer.conn(t, loaderAddr)).GetCheckpoint(rpcContext(t), &loadv1.GetCheckpointRequest{Stream: p.Stream, ShardId: "shardId-000000000000"})
		return status.Code(err) != codes.Unavailable && status.Code(err) != codes.PermissionDenied
	})
	// The gateway too: its certificate is served from the new files (a client trusting only
	// the new CA completes the handshake, one trusting only the old does not).
	for _, addr := range []string{loaderAddr, transformerAddr, consumerAddr, gatewayAddr} {
		if _, err := healthpb.NewHealthClient(asConsumer.conn(t, addr)).Check(rpcContext(t), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
			t.Errorf("%s after the rotation, a client of the old CA: %v, want refused", addr, err)
		}
		if _, err := healthpb.NewHealthClient(rotatedConsumer.conn(t, addr)).Check(rpcContext(t), &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("%s after the rotation, a client of the new CA: %v, want OK", addr, err)
		}
	}
	more := season(rand.New(rand.NewPCG(2026, 13)), stack.PlayersOverShards(t, p.Kinesis, p.Stream, 680000, 2), 6)
	mustSend(t, producer, more, false)
	for _, l := range more {
		expected[l.Key()] = true
	}
	p.WaitFor(90*time.Second, "the lines sent after the rotation in the warehouse", func() bool {
		return p.Count("SELECT count(*) FROM boxscore.fact_batting_game") >= len(expected) && p.CheckpointsAt(led.Acked())
	})
	if rows := p.AssertExactlyOnce(led); len(rows) != len(expected) {
		t.Fatalf("fact rows after the rotation = %d, want %d", len(rows), len(expected))
	}
	for _, name := range stack.Services {
		if p.Current(name) != procs[name] {
			t.Errorf("%s was restarted during the rotation", name)
		}
		if !strings.Contains(p.Log(name), "TLS files reloaded") {
			t.Errorf("%s did not log a reload of its TLS files", name)
		}
	}
}
