// Package server runs a Boxscore service's listeners and background workers and shuts them
// down in order: one gRPC server (with gRPC health), one admin HTTP server (/healthz,
// /readyz, /metrics, and /debug/pprof with --pprof), optional extra HTTP listeners, and
// workers.
//
// Security (see Security): the gRPC server serves mutual TLS from reloaded PEM files and
// admits only the client identities the service allows (--grpc-clients); without TLS it
// refuses to listen beyond loopback unless --insecure. Reflection and pprof are off unless
// asked for. /readyz names the failing check with a short public reason only: the full
// error (which may hold hostnames, account ids, ARNs) goes to the log.
//
// Shutdown, when the run context is cancelled (SIGTERM): mark not ready on both planes so
// load balancers and Kubernetes stop sending work; wait DrainDelay for them to notice; stop
// the public listeners gracefully (in-flight requests finish); cancel the workers and wait
// for them to hand back or commit what they hold; all within ShutdownTimeout, after which
// the remaining connections are closed hard. The admin server stops last so probes and
// metrics stay answerable while draining.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload"
)

// Config is the listener and shutdown part of a service's configuration. Defaults for the
// addresses come from kong variables grpc_addr and admin_addr, set per service.
type Config struct {
	GRPCAddr        string        `name:"grpc-addr" env:"BOXSCORE_GRPC_ADDR" default:"${grpc_addr}" help:"Address of the gRPC server."`
	AdminAddr       string        `name:"admin-addr" env:"BOXSCORE_ADMIN_ADDR" default:"${admin_addr}" help:"Address of the admin HTTP server (/healthz, /readyz, /metrics, /debug/pprof)."`
	DrainDelay      time.Duration `name:"drain-delay" env:"BOXSCORE_DRAIN_DELAY" default:"1s" help:"How long to stay up but not ready after SIGTERM, so load balancers stop sending work."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"BOXSCORE_SHUTDOWN_TIMEOUT" default:"20s" help:"Upper bound on the graceful part of shutdown; keep it below Kubernetes' terminationGracePeriodSeconds."`
	// MaxConnectionAge spreads load over replicas that scale out: a client balancing over
	// DNS (Dial) only learns of new pods when it re-resolves, which it does when a
	// connection ends. Without an age, a client keeps its first connections for ever.
	MaxConnectionAge time.Duration `name:"grpc-max-connection-age" env:"BOXSCORE_GRPC_MAX_CONNECTION_AGE" default:"30s" help:"Close gRPC connections gracefully after this long, so clients re-resolve and spread over new replicas (0: never)."`

	Security `embed:""`
}

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	var errs []error
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("grpc-addr is required"))
	}
	if c.AdminAddr == "" {
		errs = append(errs, errors.New("admin-addr is required"))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, errors.New("drain-delay must not be negative"))
	}
	if c.ShutdownTimeout <= c.DrainDelay {
		errs = append(errs, fmt.Errorf("shutdown-timeout (%s) must be longer than drain-delay (%s)", c.ShutdownTimeout, c.DrainDelay))
	}
	if c.MaxConnectionAge != 0 && c.MaxConnectionAge < time.Second {
		errs = append(errs, fmt.Errorf("grpc-max-connection-age (%s) must be 0 (never) or at least 1s", c.MaxConnectionAge))
	}
	errs = append(errs, c.Security.validate(c.GRPCAddr))
	return errors.Join(errs...)
}

type namedHTTP struct {
	name   string
	addr   string
	server *http.Server
}

type namedWorker struct {
	name string
	run  func(ctx context.Context) error
}

type readyCheck struct {
	name  string
	check func(context.Context) error
}

// Server is the process's set of listeners and workers.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	tls     *tlsreload.Reloader // nil without TLS
	grpc    *grpc.Server
	health  *health.Server
	admin   *http.Server
	http    []namedHTTP
	workers []namedWorker

	mu       sync.Mutex
	checks   []readyCheck
	draining atomic.Bool
	// notReady remembers the last logged failure of each check, so a failure is logged
	// when it starts or changes (and once a minute while it lasts), not on every probe.
	notReady map[string]loggedFailure

	// Bound addresses, known once Run has opened the listeners.
	grpcAddr, adminAddr atomic.Value
	listening           chan struct{}
}

// New builds a server. Register gRPC services on GRPC() and add listeners, checks and
// workers before calling Run.
func New(cfg Config, logger *slog.Logger, tel *telemetry.Telemetry, opts ...grpc.ServerOption) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	s := &Server{cfg: cfg, logger: logger, health: health.NewServer(), listening: make(chan struct{}),
		notReady: map[string]loggedFailure{}}
	// Health checks are polled every few seconds: keep them out of traces.
	statsHandler := otelgrpc.NewServerHandler(otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
		return info.FullMethodName != healthpb.Health_Check_FullMethodName &&
			info.FullMethodName != healthpb.Health_Watch_FullMethodName
	}))
	defaults := []grpc.ServerOption{
		grpc.StatsHandler(statsHandler),
		grpc.ChainUnaryInterceptor(recoverUnary(logger)),
		grpc.ChainStreamInterceptor(recoverStream(logger)),
		// Internal messages (a batch of up to 10,000 records, its rows) exceed gRPC's 4 MiB
		// default; a service's own options (later) may bound its messages tighter.
		grpc.MaxRecvMsgSize(limits.GRPCMessageBytes),
		grpc.MaxSendMsgSize(limits.GRPCMessageBytes),
		grpc.KeepaliveParams(serverKeepalive(cfg)),
		// A connection that never completes its handshake (a TCP probe, a scanner) is
		// dropped soon; gRPC's default of 120 s would also hold up a shutdown that long.
		grpc.ConnectionTimeout(5 * time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: clientKeepaliveTime / 2, PermitWithoutStream: true}),
	}
	if cfg.TLSEnabled() {
		r, err := tlsreload.New(tlsreload.Files{Cert: cfg.TLSCertFile, Key: cfg.TLSKeyFile, CA: cfg.TLSCAFile}, logger)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		s.tls = r
		defaults = append(defaults, grpc.Creds(credentials.NewTLS(r.ServerConfig(cfg.clientAuth(), "h2"))))
		if len(cfg.GRPCClients) > 0 {
			// After the panic recovery, before the service's own interceptors: nothing of
			// the service runs for a caller it does not admit.
			a := authorizer{allowed: cfg.GRPCClients}
			defaults = append(defaults, grpc.ChainUnaryInterceptor(a.unary), grpc.ChainStreamInterceptor(a.stream))
		}
		logger.Info("gRPC serves mutual TLS", "identity", r.Identity(), "client_certificate", cfg.clientAuth().String(),
			"allowed_clients", strings.Join(cfg.GRPCClients, ","))
	} else if !IsLoopback(cfg.GRPCAddr) {
		logger.Warn("gRPC serves plaintext beyond loopback (--insecure): any client that reaches the port may call it", "grpc_addr", cfg.GRPCAddr)
	}
	s.grpc = grpc.NewServer(append(defaults, opts...)...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if cfg.GRPCReflection {
		reflection.Register(s.grpc)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	if tel != nil {
		mux.Handle("GET /metrics", tel.MetricsHandler())
	}
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// GRPC returns the gRPC server to register services on.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// AdminHandle adds a handler to the admin HTTP server (for service-specific admin pages).
func (s *Server) AdminHandle(pattern string, h http.Handler) {
	s.admin.Handler.(*http.ServeMux).Handle(pattern, h)
}

// AddHTTP adds a public HTTP listener that is shut down gracefully with the gRPC server.
func (s *Server) AddHTTP(name, addr string, h http.Handler) {
	s.http = append(s.http, namedHTTP{name: name, addr: addr, server: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}})
}

// AddReadyCheck adds a readiness condition; /readyz and gRPC health report not ready while
// any check fails. Checks run on every probe, so they must be cheap (cache if needed).
//
// /readyz answers "not ready: <name>: <reason>", where the reason is the text of a
// PublicReason the check's error wraps, or "unavailable (see logs)": raw errors of AWS or
// PostgreSQL name hosts, accounts and ARNs, and the admin port is not the place for them.
// The whole error is logged at warn when a failure starts or changes.
func (s *Server) AddReadyCheck(name string, check func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, readyCheck{name: name, check: check})
}

// AddWorker adds a background loop. Its context is cancelled at shutdown after the drain
// delay; it must then finish or hand back its in-flight work and return. A worker that
// returns an error before shutdown stops the whole process (Kubernetes restarts it).
func (s *Server) AddWorker(name string, run func(ctx context.Context) error) {
	s.workers = append(s.workers, namedWorker{name: name, run: run})
}

// GRPCAddr returns the bound gRPC address once Run is listening (useful with port 0).
func (s *Server) GRPCAddr() string { v, _ := s.grpcAddr.Load().(string); return v }

// AdminAddr returns the bound admin address once Run is listening.
func (s *Server) AdminAddr() string { v, _ := s.adminAddr.Load().(string); return v }

// Listening is closed once every listener is open.
func (s *Server) Listening() <-chan struct{} { return s.listening }

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %s\n", publicText(err))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// ready returns nil when every check passes, else the first failure as a *checkFailure.
func (s *Server) ready(ctx context.Context) error {
	if s.draining.Load() {
		return PublicReason("shutting down")
	}
	s.mu.Lock()
	checks := append([]readyCheck(nil), s.checks...)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, c := range checks {
		err := c.check(ctx)
		s.noteReadiness(c.name, err)
		if err != nil {
			return &checkFailure{name: c.name, err: err}
		}
	}
	return nil
}

// Run opens the listeners, serves, and runs the workers until ctx is cancelled or one of
// them fails, then shuts everything down in order. It returns nil after a clean shutdown
// on ctx cancellation.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen gRPC on %s: %w", s.cfg.GRPCAddr, err)
	}
	adminLis, err := lc.Listen(ctx, "tcp", s.cfg.AdminAddr)
	if err != nil {
		_ = grpcLis.Close()
		return fmt.Errorf("listen admin on %s: %w", s.cfg.AdminAddr, err)
	}
	httpLis := make([]net.Listener, len(s.http))
	for i, h := range s.http {
		if httpLis[i], err = lc.Listen(ctx, "tcp", h.addr); err != nil {
			_ = grpcLis.Close()
			_ = adminLis.Close()
			for _, l := range httpLis[:i] {
				_ = l.Close()
			}
			return fmt.Errorf("listen %s on %s: %w", h.name, h.addr, err)
		}
	}
	s.grpcAddr.Store(grpcLis.Addr().String())
	s.adminAddr.Store(adminLis.Addr().String())
	close(s.listening)

	// serveCtx ends on a signal or when any component fails; workerCtx ends only once the
	// drain delay has passed, so workers keep going while the endpoints stop taking work.
	serveCtx, cancelServe := context.WithCancelCause(ctx)
	defer cancelServe(nil)
	workerCtx, cancelWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWorkers()

	var serving errgroup.Group
	fail := func(name string, err error) {
		if err != nil {
			cancelServe(fmt.Errorf("%s: %w", name, err))
		}
	}
	serving.Go(func() error {
		err := s.grpc.Serve(grpcLis)
		fail("gRPC server", err)
		return err
	})
	serving.Go(func() error {
		err := s.admin.Serve(adminLis)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		fail("admin server", err)
		return err
	})
	for i, h := range s.http {
		serving.Go(func() error {
			err := h.server.Serve(httpLis[i])
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			fail(h.name, err)
			return err
		})
	}
	var workers sync.WaitGroup
	workerErrs := make(chan error, len(s.workers))
	for _, w := range s.workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			err := w.run(workerCtx)
			if err != nil && workerCtx.Err() == nil {
				err = fmt.Errorf("worker %s: %w", w.name, err)
				workerErrs <- err
				cancelServe(err)
			}
		}()
	}
	go s.watchHealth(serveCtx)
	s.logger.Info("serving", "grpc_addr", s.GRPCAddr(), "admin_addr", s.AdminAddr(), "http", len(s.http), "workers", len(s.workers))

	<-serveCtx.Done()
	cause := context.Cause(serveCtx)
	if errors.Is(cause, ctx.Err()) && ctx.Err() != nil {
		cause = nil // a signal, not a failure
	}
	s.logger.Info("shutting down", "reason", fmt.Sprint(context.Cause(serveCtx)), "drain_delay", s.cfg.DrainDelay)
	s.shutdown(cancelWorkers, &workers)
	waitErr := serving.Wait()
	close(workerErrs)
	var errs []error
	if cause != nil {
		errs = append(errs, cause)
	}
	for err := range workerErrs {
		if !errors.Is(cause, err) {
			errs = append(errs, err)
		}
	}
	if cause == nil && waitErr != nil && !errors.Is(waitErr, grpc.ErrServerStopped) {
		errs = append(errs, waitErr)
	}
	return errors.Join(errs...)
}

func (s *Server) shutdown(cancelWorkers context.CancelFunc, workers *sync.WaitGroup) {
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	s.draining.Store(true)
	s.health.Shutdown() // every service reports NOT_SERVING
	time.Sleep(s.cfg.DrainDelay)

	// Public endpoints first: in-flight requests finish, no new ones are taken.
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	httpCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, h := range s.http {
		if err := h.server.Shutdown(httpCtx); err != nil {
			s.logger.Warn("HTTP listener did not drain in time; closing", "listener", h.name, "error", err)
			_ = h.server.Close()
		}
	}
	// Workers next: they commit or hand back what they hold.
	cancelWorkers()
	workersDone := make(chan struct{})
	go func() {
		workers.Wait()
		close(workersDone)
	}()
	select {
	case <-workersDone:
	case <-time.After(time.Until(deadline)):
		s.logger.Warn("workers did not finish before the shutdown timeout")
	}
	select {
	case <-stopped:
	case <-time.After(time.Until(deadline)):
		s.logger.Warn("gRPC server did not drain in time; stopping hard")
		s.grpc.Stop()
		<-stopped
	}
	adminCtx, cancelAdmin := context.WithTimeout(context.Background(), time.Second)
	defer cancelAdmin()
	if err := s.admin.Shutdown(adminCtx); err != nil {
		_ = s.admin.Close()
	}
	s.logger.Info("stopped")
}

// watchHealth keeps gRPC health in step with the readiness checks, so gRPC probes and
// /readyz agree.
func (s *Server) watchHealth(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		status := healthpb.HealthCheckResponse_SERVING
		if err := s.ready(ctx); err != nil {
			status = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if ctx.Err() == nil {
			s.health.SetServingStatus("", status)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
