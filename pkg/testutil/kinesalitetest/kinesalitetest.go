// Package kinesalitetest runs kinesalite, a local Kinesis, for tests that
// talk to Kinesis over the real API.
//
// Start gives every test in a test binary the same kinesalite process (one
// per binary, started on first use on a free 127.0.0.1 port, killed when the
// binary exits) or, when BOXSCORE_TEST_KINESIS_ENDPOINT is set, the server at
// that endpoint. Tests keep out of each other's way by using their own
// stream: CreateStream(t, UniqueName(t), shards).
//
// kinesalite predates stream ARNs: address streams by StreamName only.
//
// A process of a test's own (Launch with Options.ClockControl) has a clock the
// test can move forward (Process.AdvanceClock), e.g. past the stream's retention
// so that records expire. The shared server of Start never has one: moving it
// would expire every other test's records.
//
// The server is k8s/local/kinesalite/server.js, run with node; its
// node_modules come from `make deps` (npm ci in that directory).
package kinesalitetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const (
	// EndpointEnv names the environment variable that points tests at an
	// already running kinesalite (e.g. http://127.0.0.1:4567 from make up)
	// instead of starting one.
	EndpointEnv = "BOXSCORE_TEST_KINESIS_ENDPOINT"

	// Region is the region clients use; kinesalite accepts any.
	Region = "us-east-1"

	// startTimeout bounds how long node may take to print its listening line.
	startTimeout = 20 * time.Second
	// stopTimeout bounds a graceful stop before the process is killed.
	stopTimeout = 10 * time.Second
	// activeTimeout bounds waiting for a new stream to become ACTIVE
	// (server.js makes streams ACTIVE after 50ms by default).
	activeTimeout = 15 * time.Second
	// deleteTimeout bounds deleting a test's stream when the test ends. kinesalite deletes
	// each of the stream's records from its store: make bench's stream (2.5 million records
	// after a 5-minute soak) took more than activeTimeout.
	deleteTimeout = 3 * time.Minute
	// testShardLimit is the account-wide open shard limit of the servers
	// started here: one server serves every test of a binary.
	testShardLimit = 100000
)

// Server is a kinesalite endpoint.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:40123.
	Endpoint string
}

var shared struct {
	once    sync.Once
	server  *Server
	process *Process
	err     error
}

// Start returns the kinesalite of this test binary, starting it on first
// use, or the server at $BOXSCORE_TEST_KINESIS_ENDPOINT when that is set.
// It fails the test (it never skips) when kinesalite cannot be started.
func Start(t testing.TB) *Server {
	t.Helper()
	if endpoint := os.Getenv(EndpointEnv); endpoint != "" {
		return &Server{Endpoint: strings.TrimRight(endpoint, "/")}
	}
	shared.once.Do(func() {
		// Not tied to any test: it lives as long as the test binary, which kills it on exit
		// (see startProcess). Its data is on disk so that, like a managed stream, it
		// survives the process: if kinesalite dies (it has, rarely, under the heaviest
		// suites, for reasons its stderr will tell), it is started again on the same port
		// with its streams and records, and the death is reported to the tests.
		dir, err := os.MkdirTemp("", "kinesalitetest-")
		if err != nil {
			shared.err = err
			return
		}
		var process *Process
		process, shared.err = startProcess(Options{DataDir: dir})
		if shared.err == nil {
			shared.server = &process.Server
			shared.process = process
			go process.keepAlive()
		}
	})
	if shared.err != nil {
		t.Fatalf("kinesalitetest: %v", shared.err)
	}
	deathsBefore := shared.process.deathCount()
	t.Cleanup(func() {
		for _, death := range shared.process.deathsSince(deathsBefore) {
			t.Logf("kinesalitetest: the shared kinesalite died during the test and was restarted: %s", death)
		}
	})
	return shared.server
}

// keepAlive restarts the process on its port whenever it exits unasked, recording why.
func (p *Process) keepAlive() {
	for {
		p.mu.Lock()
		r := p.cur
		p.mu.Unlock()
		if r == nil {
			return
		}
		<-r.exited
		p.mu.Lock()
		if p.cur != r { // stopped or replaced on purpose
			p.mu.Unlock()
			return
		}
		p.deaths = append(p.deaths, fmt.Sprintf("%v%s", r.waitErr, r.stderr.suffix()))
		next, _, err := launch(p.opts)
		for attempt := 0; err != nil && attempt < 20; attempt++ {
			time.Sleep(100 * time.Millisecond)
			next, _, err = launch(p.opts)
		}
		if err != nil {
			p.deaths = append(p.deaths, fmt.Sprintf("restart failed: %v", err))
			p.cur = nil
			p.mu.Unlock()
			return
		}
		p.cur = next
		p.mu.Unlock()
	}
}

func (p *Process) deathCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.deaths)
}

func (p *Process) deathsSince(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.deaths[n:]...)
}

// Options configure a kinesalite process started by Launch.
type Options struct {
	// DataDir, if set, is the LevelDB directory: streams and records survive
	// a restart on the same directory. Empty keeps everything in memory.
	DataDir string
	// Port, if set, is the 127.0.0.1 port to listen on; 0 lets the kernel
	// pick a free one. Either way a restart (Start after Stop or Kill) listens
	// on the same port again, so endpoints handed out stay valid.
	Port int
	// ClockControl runs server.js with --clock-control (test only) so that
	// AdvanceClock can move kinesalite's clock forward.
	ClockControl bool

	// clockOffsetMs is how far AdvanceClock has moved the clock in all: a
	// restart starts there (--clock-offset-ms), so time never goes back.
	clockOffsetMs int64
}

// Process is a kinesalite process of its own, for tests that stop or
// restart it. Most tests want Start instead.
type Process struct {
	Server

	opts Options // Port is the bound port once the first run listens

	mu     sync.Mutex
	cur    *run     // nil while stopped
	deaths []string // unasked exits of a kept-alive process, with their stderr
}

// run is one life of the process, from start to exit.
type run struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // clock commands; nil without ClockControl
	stdout *lineWatcher
	stderr *tailBuffer
	exited chan struct{} // closed once the process has exited and waitErr is set
	// waitErr is cmd.Wait's result; read it only after exited is closed.
	waitErr error
}

// exitErr is why the process exited, never nil: an exit that was not asked for is an error
// even when its status is 0.
func (r *run) exitErr() error {
	if r.waitErr == nil {
		return errors.New("exit status 0")
	}
	return r.waitErr
}

// Launch starts a kinesalite process for this test only; it is stopped when
// the test finishes if the test has not stopped it.
func Launch(t testing.TB, opts Options) *Process {
	t.Helper()
	process, err := startProcess(opts)
	if err != nil {
		t.Fatalf("kinesalitetest: %v", err)
	}
	t.Cleanup(func() {
		if err := process.stop(syscall.SIGTERM); err != nil {
			t.Errorf("kinesalitetest: %v", err)
		}
	})
	return process
}

// Stop ends the process gracefully (SIGTERM, so LevelDB is closed cleanly),
// killing it if it does not exit within a few seconds. It fails the test if
// the process did not exit cleanly. Calling it again does nothing.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("kinesalitetest: %v", err)
	}
}

// Kill ends the process with SIGKILL, as a crash would. Records it
// acknowledged are already written to the operating system, so with a
// DataDir they survive.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGKILL); err != nil {
		t.Fatalf("kinesalitetest: %v", err)
	}
}

// Start starts a stopped (or killed) process again with the same options,
// on the same port, and waits until it listens.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		t.Fatalf("kinesalitetest: Start: kinesalite at %s is already running", p.Endpoint)
	}
	r, endpoint, err := launch(p.opts)
	if err != nil {
		t.Fatalf("kinesalitetest: restart on %s: %v", p.Endpoint, err)
	}
	if endpoint != p.Endpoint {
		_ = r.cmd.Process.Kill()
		<-r.exited
		t.Fatalf("kinesalitetest: restarted kinesalite listens on %s, want %s", endpoint, p.Endpoint)
	}
	p.cur = r
}

// Restart stops the process gracefully and starts it again on the same port.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	p.Stop(t)
	p.Start(t)
}

// stop ends the running process with sig (SIGTERM: gracefully, killed after
// stopTimeout). Stopping a stopped process does nothing.
func (p *Process) stop(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.cur
	if r == nil {
		return nil
	}
	p.cur = nil
	select {
	case <-r.exited:
		return fmt.Errorf("kinesalite at %s exited before it was stopped: %w%s", p.Endpoint, r.exitErr(), r.stderr.suffix())
	default:
	}
	if err := r.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal kinesalite at %s: %w", p.Endpoint, err)
	}
	if sig == syscall.SIGKILL {
		<-r.exited
		return nil
	}
	select {
	case <-r.exited:
		if r.waitErr != nil {
			return fmt.Errorf("kinesalite at %s did not exit cleanly: %w%s", p.Endpoint, r.waitErr, r.stderr.suffix())
		}
		return nil
	case <-time.After(stopTimeout):
		killErr := r.cmd.Process.Kill()
		<-r.exited
		err := fmt.Errorf("kinesalite at %s ignored SIGTERM for %s and was killed%s", p.Endpoint, stopTimeout, r.stderr.suffix())
		if killErr != nil {
			err = fmt.Errorf("%w (kill: %w)", err, killErr)
		}
		return err
	}
}

// listeningLine is what server.js prints once it accepts connections.
var listeningLine = regexp.MustCompile(`^kinesalite listening on (http://127\.0\.0\.1:(\d+))$`)

// startProcess launches node server.js and waits for it to say where it
// listens.
func startProcess(opts Options) (*Process, error) {
	r, endpoint, err := launch(opts)
	if err != nil {
		return nil, err
	}
	p := &Process{Server: Server{Endpoint: endpoint}, opts: opts, cur: r}
	// Restarts listen where this run does.
	_, port, _ := strings.Cut(strings.TrimPrefix(endpoint, "http://"), ":")
	if p.opts.Port, err = strconv.Atoi(port); err != nil {
		return nil, errors.Join(fmt.Errorf("port of %s: %w", endpoint, err), p.stop(syscall.SIGKILL))
	}
	return p, nil
}

// launch starts one run of node server.js on opts.Port (0: a free port) and
// returns its endpoint once it listens.
func launch(opts Options) (*run, string, error) {
	serverJS, err := serverScript()
	if err != nil {
		return nil, "", err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "", fmt.Errorf("node (Node.js 20+) is needed to run kinesalite: %w", err)
	}

	args := []string{serverJS, "--host", "127.0.0.1", "--port", strconv.Itoa(opts.Port), "--shard-limit", strconv.Itoa(testShardLimit)}
	if opts.DataDir != "" {
		args = append(args, "--path", opts.DataDir)
	}
	if opts.ClockControl {
		args = append(args, "--clock-control", "--clock-offset-ms", strconv.FormatInt(opts.clockOffsetMs, 10))
	}
	cmd := exec.Command(node, args...)
	cmd.Dir = filepath.Dir(serverJS)
	setDieWithParent(cmd)
	stdout := newLineWatcher()
	cmd.Stdout = stdout
	r := &run{cmd: cmd, stdout: stdout, stderr: &tailBuffer{limit: 8 << 10}, exited: make(chan struct{})}
	cmd.Stderr = r.stderr
	if opts.ClockControl {
		if r.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, "", fmt.Errorf("stdin of %s: %w", serverJS, err)
		}
	}

	// The child is killed when the OS thread that started it exits
	// (Pdeathsig is per thread, not per process). Start and Wait on one
	// locked thread that stays alive as long as the child does; when the
	// test binary exits, the thread goes and the child with it.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: when this goroutine returns the thread is
		// discarded, which is fine: the child is gone by then.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.waitErr = cmd.Wait()
		close(r.exited)
	}()
	if err := <-started; err != nil {
		return nil, "", fmt.Errorf("start %s %s: %w", node, serverJS, err)
	}

	select {
	case line := <-stdout.lines:
		m := listeningLine.FindStringSubmatch(line)
		if m == nil {
			_ = cmd.Process.Kill() // the error only says it already exited
			<-r.exited
			return nil, "", fmt.Errorf("kinesalite printed %q, want %q", line, "kinesalite listening on http://127.0.0.1:PORT")
		}
		return r, m[1], nil
	case <-r.exited:
		return nil, "", fmt.Errorf("kinesalite exited before listening: %w%s", r.exitErr(), r.stderr.suffix())
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill() // the error only says it already exited
		<-r.exited
		return nil, "", fmt.Errorf("kinesalite did not listen within %s%s", startTimeout, r.stderr.suffix())
	}
}

// serverScript finds k8s/local/kinesalite/server.js from the repository
// root (the directory holding go.work, above the test's working directory)
// and checks that its node_modules are installed.
func serverScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory: cannot find the repository root holding k8s/local/kinesalite (or set %s)", EndpointEnv)
		}
		dir = parent
	}
	kinesaliteDir := filepath.Join(dir, "k8s", "local", "kinesalite")
	if _, err := os.Stat(filepath.Join(kinesaliteDir, "node_modules", "kinesalite", "package.json")); err != nil {
		return "", fmt.Errorf("kinesalite is not installed in %s: run `make deps` (or `npm ci --ignore-scripts` in that directory): %w", kinesaliteDir, err)
	}
	return filepath.Join(kinesaliteDir, "server.js"), nil
}

// Client returns a Kinesis client for this server. kinesalite ignores
// credentials but the SDK wants some; retries are short so that a failing
// test fails in seconds.
func (s *Server) Client(t testing.TB) *kinesis.Client {
	t.Helper()
	return NewClient(s.Endpoint)
}

// NewClient returns a Kinesis client for the kinesalite at endpoint, built
// without reading the environment or ~/.aws, so tests are hermetic.
func NewClient(endpoint string) *kinesis.Client {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("kinesalite", "kinesalite", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 5
				o.MaxBackoff = 200 * time.Millisecond
				// The default retry quota would stop retrying after a burst
				// of errors, which tests of error paths cause on purpose.
				o.RateLimiter = ratelimit.None
			})
		},
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// CreateStream creates stream name with the given number of shards, waits
// until it is ACTIVE, and deletes it when the test finishes (so a shared
// server, such as the one of make up, does not fill up).
func (s *Server) CreateStream(t testing.TB, name string, shards int32) {
	t.Helper()
	if err := createStream(t.Context(), s.Client(t), name, shards); err != nil {
		t.Fatalf("kinesalitetest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_, err := s.Client(t).DeleteStream(ctx, &kinesis.DeleteStreamInput{
			StreamName:              aws.String(name),
			EnforceConsumerDeletion: aws.Bool(true),
		})
		var notFound *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &notFound) { // gone already: the test deleted it
			t.Errorf("kinesalitetest: delete stream %s: %v", name, err)
		}
	})
}

func createStream(ctx context.Context, client *kinesis.Client, name string, shards int32) error {
	ctx, cancel := context.WithTimeout(ctx, activeTimeout)
	defer cancel()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(shards),
	}); err != nil {
		return fmt.Errorf("create stream %s with %d shards: %w", name, shards, err)
	}
	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("wait for stream %s to be ACTIVE: %w", name, err)
		}
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s still %s: %w", name, out.StreamDescriptionSummary.StreamStatus, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// invalidNameChars are the characters a stream name may not contain.
var invalidNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// UniqueName returns a stream name for this test: its name made valid for
// Kinesis (letters, digits, _ . -), cut short, and a random suffix, so
// reruns and parallel tests never share a stream.
func UniqueName(t testing.TB) string {
	t.Helper()
	base := strings.Trim(invalidNameChars.ReplaceAllString(t.Name(), "-"), "-.")
	const maxBase = 100 // Kinesis allows 128; the suffix takes 13.
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatalf("kinesalitetest: random stream name: %v", err)
	}
	if base == "" {
		base = "test"
	}
	return base + "-" + hex.EncodeToString(suffix[:])
}

// lineWatcher is the child's stdout: it sends the first complete line (the
// listening line) on lines, and later lines that answer clock commands on
// clock; it discards the rest.
type lineWatcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	sent  bool
	lines chan string
	clock chan string
}

func newLineWatcher() *lineWatcher {
	return &lineWatcher{lines: make(chan string, 1), clock: make(chan string, 16)}
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, rest, found := strings.Cut(w.buf.String(), "\n")
		if !found {
			return len(p), nil
		}
		w.buf.Reset()
		w.buf.WriteString(rest)
		line = strings.TrimRight(line, "\r")
		switch {
		case !w.sent:
			w.sent = true
			w.lines <- line
		case strings.HasPrefix(line, "clock "):
			select {
			case w.clock <- line:
			default: // nobody is asking: an answer to a command given up on
			}
		}
	}
}

// tailBuffer keeps the last limit bytes written to it: the child's stderr,
// quoted in errors.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// suffix formats the captured stderr for the end of an error message.
func (b *tailBuffer) suffix() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := strings.TrimSpace(string(b.buf))
	if text == "" {
		return ""
	}
	return "\nkinesalite stderr:\n" + text
}
