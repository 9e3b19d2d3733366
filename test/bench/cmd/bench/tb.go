package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchTB lets a program use the test harness (test/stack, kinesalitetest, pgtest), whose
// functions take a testing.TB, outside `go test`: the bench is a program so that `make test`
// never runs it. The embedded interface is nil: it only supplies testing.TB's unexported
// method; every method the harness calls is implemented below, and one that is not would
// panic loudly rather than misbehave.
type benchTB struct {
	testing.TB

	ctx     context.Context
	cancel  context.CancelFunc
	started time.Time

	mu       sync.Mutex
	failed   bool
	cleanups []func()
	tempDirs []string
}

func newBenchTB() *benchTB {
	ctx, cancel := context.WithCancel(context.Background())
	return &benchTB{ctx: ctx, cancel: cancel, started: time.Now()}
}

func (t *benchTB) Name() string                    { return "bench" }
func (t *benchTB) Helper()                         {}
func (t *benchTB) Context() context.Context        { return t.ctx }
func (t *benchTB) Log(args ...any)                 { t.logf("%s", fmt.Sprint(args...)) }
func (t *benchTB) Logf(format string, args ...any) { t.logf(format, args...) }

func (t *benchTB) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench [%5.1fs]: %s\n", time.Since(t.started).Seconds(), fmt.Sprintf(format, args...))
}

func (t *benchTB) Error(args ...any) { t.Errorf("%s", fmt.Sprint(args...)) }

func (t *benchTB) Errorf(format string, args ...any) {
	t.logf("ERROR: "+format, args...)
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}

func (t *benchTB) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf records the failure and ends the calling goroutine, as testing does; run (the
// bench's main goroutine) sees the failure and cleans up.
func (t *benchTB) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	runtime.Goexit()
}

func (t *benchTB) FailNow() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *benchTB) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}

func (t *benchTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "boxscore-bench-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.mu.Lock()
	t.tempDirs = append(t.tempDirs, dir)
	t.mu.Unlock()
	return dir
}

// cleanup runs the cleanups last-registered first, as testing does, then removes the
// temporary directories.
func (t *benchTB) cleanup() {
	t.cancel()
	for {
		t.mu.Lock()
		if len(t.cleanups) == 0 {
			t.mu.Unlock()
			break
		}
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		t.mu.Unlock()
		runCleanup(f)
	}
	for _, dir := range t.tempDirs {
		_ = os.RemoveAll(dir)
	}
}

// runCleanup runs f on a goroutine of its own, so a cleanup that calls Fatalf (Goexit)
// ends only itself.
func runCleanup(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// run calls body on a goroutine of its own (Fatalf ends it with Goexit) and reports
// whether it returned without a failure.
func (t *benchTB) run(body func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		body()
	}()
	<-done
	return !t.Failed()
}
