// Package stack starts the four Boxscore services as separate processes, the way they run
// in Kubernetes, on a test's own kinesalite stream and PostgreSQL database, any number of
// replicas of each, on addresses of their own when asked (Config.Listen). It holds what the
// cross-service tests (test/e2e, test/chaos, test/group) share: a stack on its own stream
// and database with the ways to look at it (Pipeline: the stream read back, checkpoints,
// leases, warehouse rows and dead letters, the exactly-once check), the event builder
// (Line), a producer with its ledger of what the gateway accepted, the services' metrics
// (Metrics) and a DNS server for balancing tests (StartDNS).
package stack

import (
	"bytes"
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/tlsreload"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload/tlstest"
)

// Service names, also the binaries' names.
const (
	Gateway     = "ingest-gateway"
	Consumer    = "shard-consumer"
	Transformer = "transformer"
	Loader      = "loader"
)

// CLI is the operator's command (replay, extract, report), built with the services.
const CLI = "boxscore"

// Services in start order: dependencies first.
var Services = []string{Loader, Transformer, Consumer, Gateway}

// builds are the binaries built so far by this test binary, one directory per build
// mode (race or release), each built once.
var (
	buildMu sync.Mutex
	builds  = map[bool]*build{}
)

type build struct {
	once sync.Once
	dir  string
	err  error
}

// RepoRoot is the directory holding go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory")
		}
		dir = parent
	}
}

// SourceEnv names an environment variable that, when set, is the directory (holding
// go.work) the services are built from instead of this repository, e.g. an export of
// another commit, to run these tests against it.
const SourceEnv = "BOXSCORE_STACK_SOURCE"

// Binaries builds the four services once per test binary (with -race, so the end-to-end
// run also hunts data races in the services) and returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	return binaries(t, true)
}

// ReleaseBinaries builds the four services once per test binary without -race, as they
// ship (race-instrumented binaries run several times slower and bigger), and returns the
// directory holding them: what a stack with Config.Release runs, for measuring.
func ReleaseBinaries(t testing.TB) string {
	t.Helper()
	return binaries(t, false)
}

func binaries(t testing.TB, race bool) string {
	t.Helper()
	buildMu.Lock()
	b := builds[race]
	if b == nil {
		b = &build{}
		builds[race] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.dir, b.err = buildServices(race) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.dir
}

func buildServices(race bool) (string, error) {
	root, err := RepoRoot()
	if src := os.Getenv(SourceEnv); src != "" {
		root, err = src, nil
	}
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "boxscore-e2e-bin-")
	if err != nil {
		return "", fmt.Errorf("binaries directory: %w", err)
	}
	for _, s := range append(Services, CLI) {
		pkg := "./services/" + s
		if s == CLI {
			pkg = "./cmd/boxscore"
		}
		args := []string{"build", "-o", filepath.Join(dir, s), pkg}
		if race {
			args = slices.Insert(args, 1, "-race")
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir, nil
}

// Ports are one instance's listen address and ports.
type Ports struct {
	// Host is the IP address every listener of the instance binds (127.0.0.1 unless the
	// stack's Config.Listen says otherwise).
	Host              string
	GRPC, Admin, HTTP int
}

// GRPCAddr is the instance's gRPC address, host:port.
func (p Ports) GRPCAddr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.GRPC)) }

// Listen places one instance: on its own loopback address (Linux routes all of 127/8 to
// lo, so 127.0.0.2 and up can be bound without setup), on a chosen gRPC port, or both, as
// pods of one Service have an address each and the same port.
type Listen struct {
	Host     string // default 127.0.0.1
	GRPCPort int    // default a free port
}

// Config says what the stack runs against.
type Config struct {
	KinesisEndpoint string
	Stream          string
	DatabaseURL     string
	// Env holds extra flags, keyed by service name (for every replica of it) or by
	// instance name (for one replica, e.g. "shard-consumer-2"), added after the stack's own.
	Env map[string][]string
	// Listen places instances, by instance name ("transformer", "transformer-2"); the
	// others listen on 127.0.0.1 on free ports.
	Listen map[string]Listen
	// TransformerTarget and LoaderTarget are the consumers' --transformer-addr and
	// --loader-addr, gRPC targets (e.g. dns://127.0.0.1:5353/transformer.test:9002); by
	// default the first transformer's and loader's address.
	TransformerTarget, LoaderTarget string
	// RestartDelay is how long a supervised instance stays down after it exits before it
	// is started again (Kubernetes restarts a container after a short back-off). Default
	// 300ms.
	RestartDelay time.Duration
	// TLS runs every service with mutual TLS, as the chart does: a CA made for the stack
	// and a certificate per service whose CommonName is the service's name (its identity),
	// valid for 127.0.0.1, localhost, the service's name (and <name>.test) and every
	// Listen host, passed to every instance with --tls-cert-file, --tls-key-file and
	// --tls-ca-file. CA and TLSFiles give a test the same material for its own clients.
	TLS bool
	// Release runs binaries built without -race (ReleaseBinaries), for measuring; the
	// tests keep the race detector.
	Release bool
	// DefaultFlags leaves out the flags the stack sets for tests (debug logs, a short drain
	// delay, the consumer's short batch age and shard sync interval), so every service
	// runs with its own defaults apart from its addresses, stream and database: what users
	// run, for measuring. Config.Env still applies.
	DefaultFlags bool
}

// Stack is a running set of services: one or more instances of each.
type Stack struct {
	t   testing.TB
	cfg Config
	bin string
	dir string

	tlsFiles map[string]tlsreload.Files // by service, with Config.TLS

	mu        sync.Mutex
	ca        *tlstest.CA // with Config.TLS
	instances map[string]*instance
	closed    bool // StopAll ran: supervisors restart nothing
	restarts  sync.WaitGroup
}

// instance is one replica of a service under a stable name, across restarts.
type instance struct {
	name, service string
	ports         Ports
	supervised    bool
	stopping      bool     // stopped for good: not restarted
	proc          *Process // the running process; nil while down
	generation    int      // processes started so far
	exits         []Exit
}

// Process is one run of a service instance, from start to exit.
type Process struct {
	Name string
	// ConsumerID is the identity the process was given (--consumer-id), for consumers.
	ConsumerID string
	Started    time.Time
	cmd        *exec.Cmd
	log        *os.File
	done       chan struct{}
	err        error
	exit       Exit
	signal     syscall.Signal // the last signal the stack sent, 0 if none
	signalled  time.Time
}

// PID is the operating system's id of the process (0 if it never started): to read its
// CPU and memory from /proc while it runs.
func (p *Process) PID() int {
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exit describes how one process of an instance ended.
type Exit struct {
	Name string
	// Signal is what the stack sent before the exit (SIGTERM, SIGKILL), 0 if it exited on
	// its own.
	Signal syscall.Signal
	// Code is the exit status, -1 when a signal ended the process.
	Code int
	// Err is what Wait returned: nil for a clean exit 0.
	Err error
	// After is the time from the signal to the exit (0 without a signal).
	After time.Duration
	At    time.Time
}

func (e Exit) String() string {
	if e.Signal == 0 {
		return fmt.Sprintf("%s exited on its own: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("%s exited %v %s after %v (code %d)", e.Name, e.Err, e.After.Round(time.Millisecond), e.Signal, e.Code)
}

// New allocates ports for one instance of each service and builds the binaries; Start
// launches them.
func New(t testing.TB, cfg Config) *Stack {
	t.Helper()
	if cfg.RestartDelay == 0 {
		cfg.RestartDelay = 300 * time.Millisecond
	}
	bin := Binaries
	if cfg.Release {
		bin = ReleaseBinaries
	}
	s := &Stack{t: t, cfg: cfg, bin: bin(t), dir: t.TempDir(), instances: map[string]*instance{}}
	if cfg.TLS {
		s.makeCertificates()
	}
	for _, name := range Services {
		s.addInstance(name, 1)
	}
	t.Cleanup(s.StopAll)
	return s
}

// makeCertificates makes the stack's CA and each service's certificate files (Config.TLS).
func (s *Stack) makeCertificates() {
	s.t.Helper()
	ca, err := tlstest.NewCA("boxscore stack " + filepath.Base(s.dir))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.dir, "tls"), 0o700); err != nil {
		s.t.Fatal(err)
	}
	s.tlsFiles = map[string]tlsreload.Files{}
	s.writeCertificates(ca)
}

// writeCertificates issues every service's certificate with ca and writes the files (each
// replaced by a rename), with ca alone as the bundle.
func (s *Stack) writeCertificates(ca *tlstest.CA) {
	s.t.Helper()
	hosts := []string{"127.0.0.1", "localhost"}
	for _, l := range s.cfg.Listen {
		if l.Host != "" && !slices.Contains(hosts, l.Host) {
			hosts = append(hosts, l.Host)
		}
	}
	for _, service := range Services {
		files, err := ca.Write(filepath.Join(s.dir, "tls"), service, nil, append([]string{service, service + ".test"}, hosts...)...)
		if err != nil {
			s.t.Fatal(err)
		}
		if _, known := s.tlsFiles[service]; !known {
			s.tlsFiles[service] = files // the same paths at every rotation: args reads them unlocked
		}
	}
	s.mu.Lock()
	s.ca = ca
	s.mu.Unlock()
}

// RotateCertificates replaces every service's certificate, key and CA bundle in place with
// ones of ca, as a cert-manager renewal or a Secret update does while the services run:
// they use the new files for new connections without a restart (Config.TLS).
func (s *Stack) RotateCertificates(ca *tlstest.CA) {
	s.t.Helper()
	if s.tlsFiles == nil {
		s.t.Fatal("stack: RotateCertificates without Config.TLS")
	}
	s.writeCertificates(ca)
}

// CA is the stack's certificate authority (Config.TLS; the last RotateCertificates'), nil
// without TLS: a test issues its own clients' certificates with it.
func (s *Stack) CA() *tlstest.CA {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ca
}

// TLSFiles are the certificate, key and CA files a service runs with (Config.TLS); zero
// without TLS.
func (s *Stack) TLSFiles(service string) tlsreload.Files { return s.tlsFiles[service] }

// InstanceName is the name of replica n (from 1) of a service: the service's name for the
// first, "shard-consumer-2" for the second.
func InstanceName(service string, n int) string {
	if n <= 1 {
		return service
	}
	return fmt.Sprintf("%s-%d", service, n)
}

func (s *Stack) addInstance(service string, n int) *instance {
	name := InstanceName(service, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if inst, ok := s.instances[name]; ok {
		return inst
	}
	inst := &instance{name: name, service: service, ports: s.allocate(name, service)}
	s.instances[name] = inst
	return inst
}

// allocate picks an instance's host and ports: the ones Config.Listen chose, free ones
// for the rest.
func (s *Stack) allocate(name, service string) Ports {
	l := s.cfg.Listen[name]
	p := Ports{Host: l.Host, GRPC: l.GRPCPort}
	if p.Host == "" {
		p.Host = "127.0.0.1"
	}
	if p.GRPC == 0 {
		p.GRPC = FreePort(s.t, p.Host)
	}
	p.Admin = FreePort(s.t, p.Host)
	if service == Gateway {
		p.HTTP = FreePort(s.t, p.Host)
	}
	return p
}

// Instances names every instance added so far, running or not, in start order of their
// services, then by name.
func (s *Stack) Instances() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, service := range Services {
		var of []string
		for name, inst := range s.instances {
			if inst.service == service {
				of = append(of, name)
			}
		}
		sort.Strings(of)
		names = append(names, of...)
	}
	return names
}

func (s *Stack) instance(name string) *instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.instances[name]
	if inst == nil {
		s.t.Fatalf("stack: no instance %q", name)
	}
	return inst
}

// Ports returns an instance's ports.
func (s *Stack) Ports(name string) Ports {
	inst := s.instance(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return inst.ports
}

// CLIPath is the path of the built boxscore command.
func (s *Stack) CLIPath() string { return filepath.Join(s.bin, CLI) }

// GatewayURL is the base URL of the ingest API (of the first gateway).
func (s *Stack) GatewayURL() string {
	p := s.Ports(Gateway)
	return "http://" + net.JoinHostPort(p.Host, strconv.Itoa(p.HTTP))
}

// AdminURL is the base URL of an instance's admin server.
func (s *Stack) AdminURL(name string) string {
	p := s.Ports(name)
	return "http://" + net.JoinHostPort(p.Host, strconv.Itoa(p.Admin))
}

// StartAll starts one instance of every service in dependency order and waits until each
// is ready.
func (s *Stack) StartAll() {
	s.t.Helper()
	for _, name := range Services {
		s.Start(name)
	}
}

// StartReplica starts replica n (from 1) of a service, on the address Config.Listen gives
// it or on free ports, and waits until it is ready. It returns the instance's name.
func (s *Stack) StartReplica(service string, n int) string {
	s.t.Helper()
	inst := s.addInstance(service, n)
	s.Start(inst.name)
	return inst.name
}

func (s *Stack) args(inst *instance, consumerID string) []string {
	p := s.Ports(inst.name)
	args := []string{
		"--grpc-addr", p.GRPCAddr(),
		"--admin-addr", net.JoinHostPort(p.Host, strconv.Itoa(p.Admin)),
		"--log-format", "json",
	}
	if !s.cfg.DefaultFlags {
		args = append(args, "--drain-delay", "100ms", "--log-level", "debug")
	}
	switch inst.service {
	case Gateway:
		args = append(args, "--http-addr", net.JoinHostPort(p.Host, strconv.Itoa(p.HTTP)),
			"--stream", s.cfg.Stream, "--kinesis-endpoint", s.cfg.KinesisEndpoint)
	case Consumer:
		transformer, loader := s.cfg.TransformerTarget, s.cfg.LoaderTarget
		if transformer == "" {
			transformer = s.Ports(Transformer).GRPCAddr()
		}
		if loader == "" {
			loader = s.Ports(Loader).GRPCAddr()
		}
		args = append(args, "--stream", s.cfg.Stream, "--kinesis-endpoint", s.cfg.KinesisEndpoint,
			"--transformer-addr", transformer, "--loader-addr", loader,
			"--consumer-id", consumerID, "--lease-database-url", s.cfg.DatabaseURL)
		if !s.cfg.DefaultFlags {
			args = append(args, "--shard-sync-interval", "2s", "--batch-max-age", "200ms")
		}
	case Loader:
		args = append(args, "--database-url", s.cfg.DatabaseURL)
	}
	if files, ok := s.tlsFiles[inst.service]; ok {
		args = append(args, "--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-file", files.CA)
	}
	args = append(args, s.cfg.Env[inst.service]...)
	if inst.name != inst.service {
		args = append(args, s.cfg.Env[inst.name]...)
	}
	return args
}

// Start launches an instance (of a service name, or of a replica name from StartReplica)
// and waits until its /readyz answers 200.
func (s *Stack) Start(name string) *Process {
	s.t.Helper()
	inst := s.instance(name)
	s.mu.Lock()
	inst.stopping = false
	running := inst.proc
	s.mu.Unlock()
	if running != nil {
		s.t.Fatalf("start %s: already running", name)
	}
	for attempt := 1; ; attempt++ {
		p, err := s.launch(inst)
		if err != nil {
			s.t.Fatalf("start %s: %v", name, err)
		}
		err = s.waitReady(name, p, 60*time.Second)
		if err == nil {
			return p
		}
		// Another process took a port between the check and the bind: on a first start
		// nothing depends on the ports yet, so take new ones.
		s.mu.Lock()
		first := inst.generation == attempt
		s.mu.Unlock()
		if first && attempt < 3 && strings.Contains(s.LogTail(name, 5), "address already in use") {
			p := s.allocate(name, inst.service)
			s.mu.Lock()
			inst.ports = p
			s.mu.Unlock()
			continue
		}
		s.t.Fatalf("%s not ready: %v\n--- %s log (tail) ---\n%s", name, err, name, s.LogTail(name, 40))
	}
}

// launch starts one process of inst and the goroutine that waits for it (and, for a
// supervised instance, restarts it once it exits).
func (s *Stack) launch(inst *instance) (*Process, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("the stack is stopped")
	}
	inst.generation++
	s.mu.Unlock()

	logFile, err := os.OpenFile(filepath.Join(s.dir, inst.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	consumerID := inst.name // like a pod's name: kept across restarts, never shared by two live processes
	cmd := exec.Command(filepath.Join(s.bin, inst.service), s.args(inst, consumerID)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=us-east-1")
	// Killed with the test binary. Pdeathsig fires when the starting OS thread exits, so
	// the process is started and waited for on a locked thread that lives as long as it
	// does (other code, e.g. kinesalitetest, ends locked threads on purpose).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Process{Name: inst.name, ConsumerID: consumerID, cmd: cmd, log: logFile, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.Started = time.Now()
		s.mu.Lock()
		inst.proc = p
		s.mu.Unlock()
		started <- nil
		err := cmd.Wait()
		s.exited(inst, p, err)
	}()
	if err := <-started; err != nil {
		_ = logFile.Close()
		return nil, err
	}
	return p, nil
}

// exited records how p ended and, for a supervised instance that was not stopped for
// good, schedules its restart.
func (s *Stack) exited(inst *instance, p *Process, err error) {
	now := time.Now()
	_ = p.log.Close()
	s.mu.Lock()
	p.err = err
	p.exit = Exit{Name: inst.name, Signal: p.signal, Code: p.cmd.ProcessState.ExitCode(), Err: err, At: now}
	if p.signal != 0 {
		p.exit.After = now.Sub(p.signalled)
	}
	inst.exits = append(inst.exits, p.exit)
	if inst.proc == p {
		inst.proc = nil
	}
	restart := inst.supervised && !inst.stopping && !s.closed
	if restart {
		s.restarts.Add(1)
	}
	s.mu.Unlock()
	close(p.done)
	if restart {
		go s.restart(inst)
	}
}

// restart starts a supervised instance again after the restart delay, retrying (with the
// delay doubling up to 5s, as Kubernetes' crash-loop back-off) while it cannot be started.
func (s *Stack) restart(inst *instance) {
	defer s.restarts.Done()
	delay := s.cfg.RestartDelay
	for {
		time.Sleep(delay)
		s.mu.Lock()
		skip := inst.stopping || s.closed || inst.proc != nil
		s.mu.Unlock()
		if skip {
			return
		}
		if _, err := s.launch(inst); err == nil {
			return
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Supervise makes the stack restart the instance whenever its process exits (killed,
// stopped by Terminate, or crashed), as Kubernetes restarts a container. Restarted
// processes are not waited for: use WaitReady.
func (s *Stack) Supervise(name string) {
	inst := s.instance(name)
	s.mu.Lock()
	inst.supervised = true
	s.mu.Unlock()
}

// Restarts is how many times the instance's process exited and was (or is being)
// restarted by the supervisor: its processes so far minus one.
func (s *Stack) Restarts(name string) int {
	inst := s.instance(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(inst.generation-1, 0)
}

// Exits lists how the instance's processes ended so far.
func (s *Stack) Exits(name string) []Exit {
	inst := s.instance(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Exit(nil), inst.exits...)
}

// Current returns the instance's running process, nil while it is down.
func (s *Stack) Current(name string) *Process {
	inst := s.instance(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return inst.proc
}

// WaitReady waits until the instance has a running process whose /readyz answers 200
// (after a supervised restart, the new process).
func (s *Stack) WaitReady(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p := s.Current(name); p != nil {
			if err := s.waitReady(name, p, time.Until(deadline)); err == nil {
				return nil
			} else if time.Now().After(deadline) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has no running process after %s", name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ready reports whether the instance runs and its /readyz answers 200 now.
func (s *Stack) Ready(name string) bool {
	if s.Current(name) == nil {
		return false
	}
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(s.AdminURL(name) + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *Stack) waitReady(name string, p *Process, timeout time.Duration) error {
	url := s.AdminURL(name) + "/readyz"
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %w", p.err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from %s within %s (last error: %w)", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig to the instance's running process and returns the process, nil when
// the instance is down.
func (s *Stack) signal(name string, sig syscall.Signal) *Process {
	inst := s.instance(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := inst.proc
	if p == nil {
		return nil
	}
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		p.signal, p.signalled = sig, time.Now()
	}
	_ = p.cmd.Process.Signal(sig)
	if sig == syscall.SIGTERM {
		// A stopped process would never see the SIGTERM.
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	return p
}

// Stop sends SIGTERM and waits for a clean exit, failing the test if the service does not
// exit within the timeout or exits with an error. The instance stays down, supervised or
// not.
func (s *Stack) Stop(name string, timeout time.Duration) {
	s.t.Helper()
	inst := s.instance(name)
	s.mu.Lock()
	inst.stopping = true
	s.mu.Unlock()
	p := s.signal(name, syscall.SIGTERM)
	if p == nil {
		return
	}
	select {
	case <-p.done:
		if p.err != nil {
			s.t.Errorf("%s exited with %v after SIGTERM\n%s", name, p.err, s.LogTail(name, 20))
		}
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		s.t.Errorf("%s did not exit within %s of SIGTERM", name, timeout)
	}
}

// Terminate sends SIGTERM, as Kubernetes does to a pod it replaces, and waits up to timeout
// for the exit, killing the process after that. A supervised instance is restarted. The
// returned Exit says how it went; ok is false when the instance was not running.
func (s *Stack) Terminate(name string, timeout time.Duration) (exit Exit, ok bool) {
	p := s.signal(name, syscall.SIGTERM)
	if p == nil {
		return Exit{}, false
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.exit, true
}

// Kill sends SIGKILL: no shutdown at all, as a crash or an OOM kill. It returns once the
// process is gone; a supervised instance is then restarted, any other stays down.
func (s *Stack) Kill(name string) {
	if p := s.signal(name, syscall.SIGKILL); p != nil {
		<-p.done
	}
}

// KillAndHold sends SIGKILL and keeps the instance down, supervised or not, until Start:
// a pod lost with its node, whose replacement comes later under a new name, so that only
// the other replicas can take its work over.
func (s *Stack) KillAndHold(name string) {
	inst := s.instance(name)
	s.mu.Lock()
	inst.stopping = true
	s.mu.Unlock()
	s.Kill(name)
}

// Pause stops the instance's process with SIGSTOP: it holds its connections and leases
// but does nothing, as a process stalled by a long GC pause, a frozen VM or a network
// partition.
func (s *Stack) Pause(name string) {
	s.t.Helper()
	if s.signal(name, syscall.SIGSTOP) == nil {
		s.t.Fatalf("pause %s: not running", name)
	}
}

// Resume continues a paused instance (SIGCONT).
func (s *Stack) Resume(name string) {
	s.t.Helper()
	if s.signal(name, syscall.SIGCONT) == nil {
		s.t.Fatalf("resume %s: not running", name)
	}
}

// StopAll stops every instance, dependents first, and ends supervision.
func (s *Stack) StopAll() {
	var order []string
	s.mu.Lock()
	for i := len(Services) - 1; i >= 0; i-- {
		var names []string
		for name, inst := range s.instances {
			if inst.service == Services[i] {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		order = append(order, names...)
	}
	s.mu.Unlock()
	// Stop first (so nothing is restarted), then close: a restart in flight may still start
	// a process, which the second round stops.
	for _, name := range order {
		s.Stop(name, 30*time.Second)
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.restarts.Wait()
	for _, name := range order {
		s.Stop(name, 30*time.Second)
	}
}

// LogTail returns the last n lines of an instance's log (every process of it, appended).
func (s *Stack) LogTail(name string, n int) string {
	data, err := os.ReadFile(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Log returns an instance's whole log.
func (s *Stack) Log(name string) string {
	data, _ := os.ReadFile(filepath.Join(s.dir, name+".log"))
	return string(data)
}

// FreePort returns a port free on every one of hosts (default 127.0.0.1), below Linux's
// ephemeral range (32768-60999 by default), so an outgoing connection's source port never
// takes it between the check and a restart.
func FreePort(t testing.TB, hosts ...string) int {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	var lc net.ListenConfig
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		free := true
		for _, host := range hosts {
			l, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatalf("stack: no port free on %v found in 20000-31999", hosts)
	return 0
}
