package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDirEnv names the environment variable that points StartServer at the directory holding
// initdb and pg_ctl, when they are neither under /usr/lib/postgresql/*/bin nor on PATH.
const BinDirEnv = "BOXSCORE_TEST_POSTGRES_BIN"

// serverReadyTimeout bounds pg_ctl start/stop and waiting for connections.
const serverReadyTimeout = 60 * time.Second

// Server is a PostgreSQL instance of one test's own: its data directory, port and socket are
// private, so stopping, killing or restarting it disturbs nothing else on the machine. Fault
// tests use it; ordinary SQL tests want NewDatabase on the shared server.
//
// It listens on 127.0.0.1 on a port chosen at start and kept across restarts (so connection
// strings handed out stay valid), user postgres, trust authentication.
type Server struct {
	binDir  string
	dir     string // owns everything: data, socket, log
	dataDir string
	logPath string
	port    int
	// asUser is "postgres" when the test runs as root: PostgreSQL refuses to run as root,
	// so initdb and pg_ctl run through runuser.
	asUser string

	mu      sync.Mutex
	running bool
}

// StartServer initialises a new cluster in a temporary directory with the installed
// PostgreSQL binaries, starts it and waits until it accepts connections. It is stopped
// (immediately: its data is thrown away) and removed when the test finishes.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := newServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	if err := s.initdb(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

func newServer() (*Server, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are 0700 and owned by the test's user, which the postgres
	// user could not traverse.
	dir, err := os.MkdirTemp("", "boxscore-pg-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory for PostgreSQL: %w", err)
	}
	s := &Server{binDir: binDir, dir: dir, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		u, err := user.Lookup(s.asUser)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, PostgreSQL must run as user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("hand %s to user postgres: %w", dir, err)
		}
	}
	port, err := freeTCPPort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.port = port
	return s, nil
}

// findBinDir returns the directory of initdb and pg_ctl: $BOXSCORE_TEST_POSTGRES_BIN, the
// newest /usr/lib/postgresql/<version>/bin (Debian's layout, which keeps them off PATH), or
// the directory of initdb on PATH.
func findBinDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(initdb), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH: "+
		"install them with .ci/ensure-postgres.sh or set %s", BinDirEnv)
}

// versionOf reads the major version from /usr/lib/postgresql/<version>/bin/pg_ctl.
func versionOf(pgCtl string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(pgCtl))))
	return n
}

// command runs one of the server binaries, as user postgres when the test is root.
func (s *Server) command(ctx context.Context, binary string, args ...string) *exec.Cmd {
	path := filepath.Join(s.binDir, binary)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir
	return cmd
}

func (s *Server) run(binary string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), serverReadyTimeout+10*time.Second)
	defer cancel()
	out, err := s.command(ctx, binary, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s%s", binary, strings.Join(args, " "), err, out, s.logTail())
	}
	return nil
}

func (s *Server) initdb() error {
	// --no-sync and fsync=off: the data is thrown away, and a killed server still loses
	// nothing it committed, since the operating system keeps running. synchronous_commit
	// stays on: with it off an immediate stop would lose acknowledged commits, which a
	// real crash of the server process does not.
	if err := s.run("initdb", "-D", s.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	conf := fmt.Sprintf("\n# pgtest.StartServer\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = off\nfull_page_writes = off\nmax_connections = 200\nshared_buffers = 32MB\n",
		s.port, s.dir)
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configure PostgreSQL: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		_ = f.Close()
		return fmt.Errorf("configure PostgreSQL: %w", err)
	}
	return f.Close()
}

// URL returns the connection string of database db on this server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port is the TCP port the server listens on, the same across restarts.
func (s *Server) Port() int { return s.port }

// CreateDatabase creates database name and returns its connection string.
func (s *Server) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := execAdmin(ctx, s.URL("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.URL(name)
}

// Stop shuts the server down in fast mode: clients are disconnected, open transactions
// roll back, and it exits once everything is written.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop("fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Kill stops the server in immediate mode: every process quits at once without a
// checkpoint, as after a crash; the next start recovers from the WAL.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.stop("immediate"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped server on the same port and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart stops the server (fast mode) and starts it again, waiting until it accepts
// connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop("fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("start: the server is already running")
	}
	if err := s.run("pg_ctl", "start", "-D", s.dataDir, "-l", s.logPath, "-w", "-t", strconv.Itoa(int(serverReadyTimeout.Seconds()))); err != nil {
		return err
	}
	s.running = true
	return s.waitAccepting()
}

// waitAccepting waits until a query succeeds: pg_ctl -w returns once the postmaster is up,
// which is nearly, but not exactly, when it serves connections over TCP.
func (s *Server) waitAccepting() error {
	deadline := time.Now().Add(serverReadyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := execAdmin(ctx, s.URL("postgres"), "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL on port %d does not accept connections after %s: %w%s", s.port, serverReadyTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return errors.New("stop: the server is not running")
	}
	if err := s.run("pg_ctl", "stop", "-D", s.dataDir, "-m", mode, "-w", "-t", strconv.Itoa(int(serverReadyTimeout.Seconds()))); err != nil {
		return err
	}
	s.running = false
	return nil
}

// shutdown stops a running server immediately and removes its directory.
func (s *Server) shutdown() error {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	var stopErr error
	if running {
		stopErr = s.stop("immediate")
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return errors.Join(stopErr, fmt.Errorf("remove %s: %w", s.dir, err))
	}
	return stopErr
}

// logTail returns the end of the server log, for error messages.
func (s *Server) logTail() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil || len(data) == 0 {
		return ""
	}
	const limit = 4 << 10
	if len(data) > limit {
		data = data[len(data)-limit:]
	}
	return "\nPostgreSQL log (tail):\n" + string(data)
}

func freeTCPPort() (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
