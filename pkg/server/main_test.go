package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

type testConfig struct {
	server.Base `embed:""`
	DatabaseURL string `name:"database-url" default:"postgres://app:hunter2@db:5432/x?sslmode=disable"`
	APIKey      string `name:"api-key" secret:"true" default:"k-123"`
	Identity    string `name:"identity"`
	Fail        bool   `name:"fail-validation"`

	resolved int
}

func (c *testConfig) Validate() error {
	var errs []error
	if c.Fail {
		errs = append(errs, errors.New("fail-validation is set"))
	}
	return errors.Join(append(errs, c.Server.Validate())...)
}

func (c *testConfig) Resolve() error {
	c.resolved++
	if c.Identity == "" {
		c.Identity = "derived"
	}
	return nil
}

var testSpec = server.Spec{Name: "svc", Description: "a test service", GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}

func noSetup(t *testing.T) server.Setup {
	return func(context.Context, *server.Service) error {
		t.Error("setup ran")
		return nil
	}
}

func TestRunPrintsTheResolvedConfigWithSecretsRedacted(t *testing.T) {
	var cfg testConfig
	var stdout, stderr bytes.Buffer
	code := server.Run(t.Context(), testSpec, &cfg, noSetup(t), []string{"--print-config"}, &stdout, &stderr)
	if code != server.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var printed map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &printed); err != nil {
		t.Fatalf("--print-config output is not JSON: %v\n%s", err, stdout.String())
	}
	if strings.Contains(stdout.String(), "hunter2") || strings.Contains(stdout.String(), "k-123") {
		t.Errorf("a secret was printed:\n%s", stdout.String())
	}
	if got := printed["database-url"]; got != "postgres://app:REDACTED@db:5432/x?sslmode=disable" {
		t.Errorf("database-url printed as %v", got)
	}
	if printed["api-key"] != server.Redacted || printed["identity"] != "derived" || printed["shutdown-timeout"] != "20s" {
		t.Errorf("printed %v; want api-key redacted, the derived identity and durations as text", printed)
	}
	if cfg.resolved != 1 {
		t.Errorf("Resolve ran %d times, want once", cfg.resolved)
	}
}

func TestRunRefusesAnInvalidConfigBeforeStarting(t *testing.T) {
	var stderr bytes.Buffer
	code := server.Run(t.Context(), testSpec, &testConfig{}, noSetup(t),
		[]string{"--fail-validation", "--drain-delay", "30s"}, &bytes.Buffer{}, &stderr)
	if code != server.ExitUsage {
		t.Errorf("exit %d, want %d", code, server.ExitUsage)
	}
	for _, want := range []string{"svc:", "fail-validation is set", "shutdown-timeout"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not say %q", stderr.String(), want)
		}
	}
}

func TestRunAnswersHelp(t *testing.T) {
	var stdout bytes.Buffer
	code := server.Run(t.Context(), testSpec, &testConfig{}, noSetup(t), []string{"--help"}, &stdout, &bytes.Buffer{})
	if code != server.ExitOK || !strings.Contains(stdout.String(), "--grpc-max-connection-age") {
		t.Errorf("--help: exit %d, output %q", code, stdout.String())
	}
}

func TestRunReleasesWhatSetupOpenedWhenSetupFails(t *testing.T) {
	var released atomic.Int32
	var stderr bytes.Buffer
	code := server.Run(t.Context(), testSpec, &testConfig{}, func(_ context.Context, svc *server.Service) error {
		svc.OnClose(func() { released.Add(1) })
		return errors.New("no warehouse")
	}, []string{"--log-level", "error"}, &bytes.Buffer{}, &stderr)
	if code != server.ExitFailed || !strings.Contains(stderr.String(), "no warehouse") {
		t.Errorf("exit %d, stderr %q; want %d naming the failure", code, stderr.String(), server.ExitFailed)
	}
	if released.Load() != 1 {
		t.Errorf("released %d times, want once", released.Load())
	}
}

// The life of a service: setup registers a worker and a readiness check, the service
// serves until its context ends (a signal, for Main), then drains, releases what setup
// opened in reverse order, and exits 0.
func TestRunServesUntilCancelledThenReleasesInReverseOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var order []string
	adminAddr := make(chan string, 1)
	setup := func(_ context.Context, svc *server.Service) error {
		if svc.Logger == nil || svc.Meter == nil || svc.Name != "svc" {
			t.Errorf("service %+v lacks its logger, meter or name", svc)
		}
		svc.OnClose(func() { order = append(order, "first") })
		svc.OnClose(func() { order = append(order, "second") })
		svc.Server.AddWorker("announce", func(ctx context.Context) error {
			<-svc.Server.Listening()
			adminAddr <- svc.Server.AdminAddr()
			<-ctx.Done()
			return nil
		})
		return nil
	}
	done := make(chan int, 1)
	go func() {
		done <- server.Run(ctx, testSpec, &testConfig{}, setup,
			[]string{"--drain-delay", "0s", "--log-level", "error"}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	admin := <-adminAddr
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d while serving", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != server.ExitOK {
			t.Errorf("exit %d after cancellation, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if strings.Join(order, ",") != "second,first" {
		t.Errorf("released in order %v, want second,first", order)
	}
}
