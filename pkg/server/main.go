package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// Spec describes a service to Main: its name (binary, service.name, log prefix), what it
// does (--help), its default listen addresses and the gRPC server options of its own.
type Spec struct {
	Name        string
	Description string
	GRPCAddr    string
	AdminAddr   string
	// GRPCOptions are added after the shared ones (they may bound messages tighter).
	GRPCOptions []grpc.ServerOption
	// GRPCClients is the default of --grpc-clients: the client identities (certificate
	// CommonNames) allowed to call the service's gRPC methods when TLS is on. Empty: any
	// client with a certificate from the CA.
	GRPCClients []string
	// GRPCClientCertOptional makes the gRPC server verify a client certificate only if one
	// is given, for a service whose callers may authenticate otherwise (the gateway's
	// producers, with API keys). Identities (GRPCClients) still need a certificate.
	GRPCClientCertOptional bool
	// Tasks are one-shot subcommands beside serving (`loader migrate`): each parses the
	// same flags and variables, runs once with the service's logger and exits 0 or 1,
	// without listening on any port. Serving stays the default command.
	Tasks []Task
}

// Task is a one-shot subcommand of a service. Run reports its outcome on stdout (what a
// Job's log should show) and returns an error to exit 1.
type Task struct {
	Name string
	Help string
	Run  func(ctx context.Context, logger *slog.Logger, stdout io.Writer) error
}

// Base is the configuration every service shares; embed it (`embed:""`) in the service's
// Config.
type Base struct {
	Server      Config           `embed:""`
	Telemetry   telemetry.Config `embed:""`
	PrintConfig bool             `name:"print-config" help:"Print the effective configuration (flag names and values, secrets redacted) as JSON and exit."`
}

// BaseConfig returns the shared part; a config gets it by embedding Base.
func (b *Base) BaseConfig() *Base { return b }

// ServiceConfig is a service's configuration as Main needs it: the embedded Base and one
// Validate that reports every problem (kong calls it after parsing, the one validation
// point, so a bad flag or variable is a usage error before anything starts).
type ServiceConfig interface {
	BaseConfig() *Base
	Validate() error
}

// Resolver is implemented by a configuration with derived defaults (an identity made from
// the host name): Main calls Resolve once, after validation and before anything reads the
// configuration, so no getter changes it later.
type Resolver interface {
	Resolve() error
}

// Service is what a service's setup function builds on: the process's logger and meter,
// its Server to register gRPC services, listeners, readiness checks and workers on, and
// Dial for its clients. Resources registered with OnClose are released after the server
// stopped, before telemetry is flushed.
type Service struct {
	Name   string
	Logger *slog.Logger
	// Meter is the service's one meter: components take it as a parameter rather than
	// reaching for the global provider.
	Meter  metric.Meter
	Server *Server

	closers []func()
}

// OnClose registers a release step; they run in reverse order of registration.
func (s *Service) OnClose(release func()) { s.closers = append(s.closers, release) }

// Dial is Server.Dial (the service's mutual TLS when configured), with the connection
// closed on shutdown.
func (s *Service) Dial(target string) (*grpc.ClientConn, error) {
	conn, err := s.Server.Dial(target)
	if err != nil {
		return nil, err
	}
	s.OnClose(func() { _ = conn.Close() })
	return conn, nil
}

func (s *Service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// Setup builds a service's components on svc from its validated configuration. It returns
// an error for anything that stops the service from starting; Main logs it and exits 1.
type Setup func(ctx context.Context, svc *Service) error

// Exit codes of Main.
const (
	ExitOK     = 0
	ExitFailed = 1 // the service failed to start or stopped with an error
	ExitUsage  = 2 // bad flags, environment or configuration
)

// Main is the whole life of a service process, the same for every service: parse flags and
// BOXSCORE_* variables into cfg (kong) and validate them, resolve derived defaults, print
// the effective configuration if asked, start logging and telemetry, build the service with
// setup, serve until SIGINT or SIGTERM, shut down gracefully (Server.Run), release what
// setup opened, flush telemetry last, and exit with the code that says how it went.
func Main(spec Spec, cfg ServiceConfig, setup Setup) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := Run(ctx, spec, cfg, setup, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run is Main without the process around it: the service runs until ctx is cancelled (a
// signal, for Main) and Run returns the exit code. Tests drive a service's wiring with it.
func Run(ctx context.Context, spec Spec, cfg ServiceConfig, setup Setup, args []string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return code
	}
	exitCode := -1
	options := []kong.Option{kong.Name(spec.Name), kong.Description(spec.Description),
		kong.DefaultEnvars("BOXSCORE"), kong.Vars{"grpc_addr": spec.GRPCAddr, "admin_addr": spec.AdminAddr,
			"grpc_clients": strings.Join(spec.GRPCClients, ",")},
		kong.Writers(stdout, stderr), kong.Exit(func(code int) { exitCode = code })}
	if len(spec.Tasks) > 0 {
		// "withargs": `loader --flag …` still serves, as it did before there were tasks.
		options = append(options, kong.DynamicCommand(serveCommand, "Run the service (the default command).", "", &struct{}{}, `default:"withargs"`))
		for _, task := range spec.Tasks {
			options = append(options, kong.DynamicCommand(task.Name, task.Help, "", &struct{}{}))
		}
	}
	parser, err := kong.New(cfg, options...)
	if err != nil {
		return fail(ExitFailed, fmt.Errorf("configuration schema: %w", err))
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help was answered
		return exitCode
	}
	if err != nil {
		return fail(ExitUsage, fmt.Errorf("invalid configuration: %w", err))
	}
	if err := limits.Check(); err != nil {
		return fail(ExitFailed, fmt.Errorf("platform limits: %w", err))
	}
	if r, ok := cfg.(Resolver); ok {
		if err := r.Resolve(); err != nil {
			return fail(ExitUsage, fmt.Errorf("resolve configuration: %w", err))
		}
	}
	if cfg.BaseConfig().PrintConfig {
		if err := PrintConfig(stdout, cfg); err != nil {
			return fail(ExitFailed, err)
		}
		return ExitOK
	}
	for _, task := range spec.Tasks {
		if kctx.Command() == task.Name {
			if err := runTask(ctx, spec, cfg, task, stdout); err != nil {
				return fail(ExitFailed, fmt.Errorf("%s: %w", task.Name, err))
			}
			return ExitOK
		}
	}
	if err := serve(ctx, spec, cfg, setup); err != nil {
		return fail(ExitFailed, err)
	}
	return ExitOK
}

// serveCommand is the default command of a service that has tasks.
const serveCommand = "serve"

// runTask runs a one-shot task with the service's logging and telemetry, flushed at the end.
func runTask(ctx context.Context, spec Spec, cfg ServiceConfig, task Task, stdout io.Writer) error {
	logger, _, flushTelemetry, err := telemetry.Start(ctx, cfg.BaseConfig().Telemetry, spec.Name)
	if err != nil {
		return err
	}
	defer flushTelemetry()
	logger.Info("running "+spec.Name+" "+task.Name, "version", buildinfo.String())
	if err := task.Run(ctx, logger, stdout); err != nil {
		logger.Error(task.Name+" failed", "error", err)
		return err
	}
	return nil
}

func serve(ctx context.Context, spec Spec, cfg ServiceConfig, setup Setup) error {
	base := cfg.BaseConfig()
	logger, tel, flushTelemetry, err := telemetry.Start(ctx, base.Telemetry, spec.Name)
	if err != nil {
		return err
	}
	defer flushTelemetry() // last, so the spans and metrics of the shutdown are exported too

	serverCfg := base.Server
	serverCfg.ClientCertOptional = spec.GRPCClientCertOptional
	srv, err := New(serverCfg, logger, tel, spec.GRPCOptions...)
	if err != nil {
		return err
	}
	svc := &Service{
		Name:   spec.Name,
		Logger: logger,
		Meter:  tel.Meter("github.com/boxscore-dev/boxscore/services/" + spec.Name),
		Server: srv,
	}
	defer svc.close()
	if err := setup(ctx, svc); err != nil {
		logger.Error("start-up failed", "error", err)
		return err
	}
	logger.Info("starting "+spec.Name, "version", buildinfo.String())
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}
