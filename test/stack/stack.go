// Package stack starts the four Boxscore services as separate processes, the way they run
// in Kubernetes, on a test's own kinesalite stream and PostgreSQL database. Cross-service
// tests drive it; a later topology (all-in-one) can be added behind the same calls.
package stack

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
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

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

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

// Binaries builds the four services once per test binary (with -race, so the end-to-end
// run also hunts data races in the services) and returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "boxscore-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		for _, s := range append(Services, CLI) {
			pkg := "./services/" + s
			if s == CLI {
				pkg = "./pkg/cmd/boxscore"
			}
			cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(binDir, s), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", s, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Ports are one service's listen ports.
type Ports struct {
	GRPC, Admin, HTTP int
}

// Config says what the stack runs against.
type Config struct {
	KinesisEndpoint string
	Stream          string
	DatabaseURL     string
	// Env is added to every service's environment (e.g. batch sizes).
	Env map[string][]string
}

// Stack is a running set of services.
type Stack struct {
	t     testing.TB
	cfg   Config
	bin   string
	dir   string
	ports map[string]Ports
	mu    sync.Mutex
	procs map[string]*Process
}

// Process is one running service.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// New allocates ports and builds the binaries; Start launches the services.
func New(t testing.TB, cfg Config) *Stack {
	t.Helper()
	s := &Stack{t: t, cfg: cfg, bin: Binaries(t), dir: t.TempDir(), ports: map[string]Ports{}, procs: map[string]*Process{}}
	for _, name := range Services {
		p := Ports{GRPC: freePort(t), Admin: freePort(t)}
		if name == Gateway {
			p.HTTP = freePort(t)
		}
		s.ports[name] = p
	}
	t.Cleanup(s.StopAll)
	return s
}

// Ports returns a service's ports.
func (s *Stack) Ports(name string) Ports { return s.ports[name] }

// CLIPath is the path of the built boxscore command.
func (s *Stack) CLIPath() string { return filepath.Join(s.bin, CLI) }

// GatewayURL is the base URL of the ingest API.
func (s *Stack) GatewayURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.ports[Gateway].HTTP) }

// AdminURL is the base URL of a service's admin server.
func (s *Stack) AdminURL(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.ports[name].Admin)
}

// StartAll starts every service in dependency order and waits until each is ready.
func (s *Stack) StartAll() {
	s.t.Helper()
	for _, name := range Services {
		s.Start(name)
	}
}

func (s *Stack) args(name string) []string {
	p := s.ports[name]
	args := []string{
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", p.GRPC),
		"--admin-addr", fmt.Sprintf("127.0.0.1:%d", p.Admin),
		"--drain-delay", "100ms",
		"--log-format", "json",
		"--log-level", "debug",
	}
	switch name {
	case Gateway:
		args = append(args, "--http-addr", fmt.Sprintf("127.0.0.1:%d", p.HTTP),
			"--stream", s.cfg.Stream, "--kinesis-endpoint", s.cfg.KinesisEndpoint)
	case Consumer:
		args = append(args, "--stream", s.cfg.Stream, "--kinesis-endpoint", s.cfg.KinesisEndpoint,
			"--transformer-addr", fmt.Sprintf("127.0.0.1:%d", s.ports[Transformer].GRPC),
			"--loader-addr", fmt.Sprintf("127.0.0.1:%d", s.ports[Loader].GRPC),
			"--shard-sync-interval", "2s", "--batch-max-age", "200ms")
	case Loader:
		args = append(args, "--database-url", s.cfg.DatabaseURL)
	}
	return append(args, s.cfg.Env[name]...)
}

// Start launches one service and waits until its /readyz answers 200.
func (s *Stack) Start(name string) *Process {
	s.t.Helper()
	logPath := filepath.Join(s.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(s.bin, name), s.args(name)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=us-east-1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	if err := s.waitReady(name, p, 60*time.Second); err != nil {
		s.t.Fatalf("%s not ready: %v\n--- %s log (tail) ---\n%s", name, err, name, s.LogTail(name, 40))
	}
	return p
}

func (s *Stack) waitReady(name string, p *Process, timeout time.Duration) error {
	url := s.AdminURL(name) + "/readyz"
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
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
			return fmt.Errorf("no 200 from %s within %s (last error: %v)", url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for a clean exit, failing the test if the service does not
// exit within the timeout or exits with an error.
func (s *Stack) Stop(name string, timeout time.Duration) {
	s.t.Helper()
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
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
	_ = p.log.Close()
}

// Kill sends SIGKILL: no shutdown at all, as a crash or an OOM kill.
func (s *Stack) Kill(name string) {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.log.Close()
}

// StopAll stops every running service, newest dependency last.
func (s *Stack) StopAll() {
	for i := len(Services) - 1; i >= 0; i-- {
		s.Stop(Services[i], 30*time.Second)
	}
}

// LogTail returns the last n lines of a service's log.
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

// Log returns a service's whole log.
func (s *Stack) Log(name string) string {
	data, _ := os.ReadFile(filepath.Join(s.dir, name+".log"))
	return string(data)
}

func freePort(t testing.TB) int {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(port)
	return n
}
