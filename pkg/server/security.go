package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Security is how a service protects its gRPC port and how it calls other services.
//
// With the three TLS files set, the gRPC server serves TLS and requires a client
// certificate signed by the CA bundle (a service whose Spec says GRPCClientCertOptional,
// the gateway, only verifies one if given), every client made with Service.Dial presents
// the same certificate and verifies the server's against the same bundle, and the files
// are re-read when they change (package tlsreload): a rotated certificate is used by new
// connections without a restart. A service's identity is its certificate's Subject
// CommonName (ingest-gateway, shard-consumer, transformer, loader); GRPCClients lists the
// identities that may call this service's methods (gRPC health is open to any caller that
// completes the handshake, for probes).
//
// Without TLS, a gRPC listener bound beyond loopback (see IsLoopback) refuses to start
// unless Insecure says that plaintext is intended, so a deployment is never plaintext by
// accident while the local quickstart on 127.0.0.1 needs no certificates. The admin port
// (probes, metrics) is plain HTTP either way and exposes nothing that writes.
type Security struct {
	Insecure    bool   `name:"insecure" env:"BOXSCORE_INSECURE" help:"Allow plaintext, unauthenticated listeners beyond loopback (without it, a gRPC listener not on 127.0.0.0/8, ::1 or localhost needs the TLS files, and a database beyond loopback needs sslmode=verify-full or verify-ca)."`
	TLSCertFile string `name:"tls-cert-file" env:"BOXSCORE_TLS_CERT_FILE" help:"PEM certificate (chain) of this service, its Subject CommonName its identity; with --tls-key-file and --tls-ca-file the gRPC server serves mutual TLS and clients present it. Re-read when it changes."`
	TLSKeyFile  string `name:"tls-key-file" env:"BOXSCORE_TLS_KEY_FILE" help:"PEM private key of --tls-cert-file. Re-read when it changes."`
	TLSCAFile   string `name:"tls-ca-file" env:"BOXSCORE_TLS_CA_FILE" help:"PEM CA bundle that peers' certificates (clients of this server, servers this service calls) must chain to. Re-read when it changes."`
	// GRPCClients defaults per service (Spec.GRPCClients, kong variable grpc_clients).
	GRPCClients    []string `name:"grpc-clients" env:"BOXSCORE_GRPC_CLIENTS" default:"${grpc_clients}" sep:"," help:"With TLS: the client identities (certificate CommonNames) allowed to call this service's gRPC methods; empty: any client with a verified certificate. gRPC health is always allowed."`
	GRPCReflection bool     `name:"grpc-reflection" env:"BOXSCORE_GRPC_REFLECTION" help:"Serve gRPC server reflection (lists every method; for debugging with grpcurl)."`
	Pprof          bool     `name:"pprof" env:"BOXSCORE_PPROF" help:"Serve /debug/pprof on the admin port (profiles reveal memory contents and cost CPU; for debugging)."`

	// ClientCertOptional makes the gRPC server verify a client certificate only if one is
	// given (tls.VerifyClientCertIfGiven): for a server whose callers may authenticate
	// otherwise. Set from Spec.GRPCClientCertOptional, not a flag.
	ClientCertOptional bool `kong:"-"`
}

// TLSEnabled reports whether the TLS files are configured.
func (c Security) TLSEnabled() bool {
	return c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSCAFile != ""
}

func (c Security) validate(grpcAddr string) error {
	var errs []error
	if c.TLSEnabled() && (c.TLSCertFile == "" || c.TLSKeyFile == "" || c.TLSCAFile == "") {
		errs = append(errs, errors.New("tls-cert-file, tls-key-file and tls-ca-file go together: set all three or none"))
	}
	if grpcAddr != "" && !c.TLSEnabled() && !c.Insecure && !IsLoopback(grpcAddr) {
		errs = append(errs, fmt.Errorf("grpc-addr %s is beyond loopback without TLS: set --tls-cert-file, --tls-key-file and --tls-ca-file (BOXSCORE_TLS_*) for mutual TLS, bind 127.0.0.1, or set --insecure (BOXSCORE_INSECURE=true) to serve plaintext on purpose", grpcAddr))
	}
	for _, id := range c.GRPCClients {
		if strings.TrimSpace(id) == "" {
			errs = append(errs, errors.New("grpc-clients: empty identity in the list"))
		}
	}
	return errors.Join(errs...)
}

// clientAuth is what the gRPC server asks of clients' certificates.
func (c Security) clientAuth() tls.ClientAuthType {
	if c.ClientCertOptional {
		return tls.VerifyClientCertIfGiven
	}
	return tls.RequireAndVerifyClientCert
}

// PeerIdentity returns the identity of a gRPC call's client: the Subject CommonName of its
// verified certificate. ok is false without TLS or without a verified client certificate.
func PeerIdentity(ctx context.Context) (identity string, ok bool) {
	p, found := peer.FromContext(ctx)
	if !found || p.AuthInfo == nil {
		return "", false
	}
	info, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	return info.State.VerifiedChains[0][0].Subject.CommonName, true
}

// authorizer lets through the calls of allowed identities (and every health check).
type authorizer struct {
	allowed []string
}

func (a authorizer) check(ctx context.Context, method string) error {
	if strings.HasPrefix(method, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") {
		return nil // probes (kubelet's gRPC probe has no certificate of ours)
	}
	id, ok := PeerIdentity(ctx)
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s: the caller presented no verified client certificate; allowed identities: %s",
			method, strings.Join(a.allowed, ", "))
	}
	if !slices.Contains(a.allowed, id) {
		return status.Errorf(codes.PermissionDenied, "%s: caller identity %q is not allowed; allowed identities: %s",
			method, id, strings.Join(a.allowed, ", "))
	}
	return nil
}

func (a authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
