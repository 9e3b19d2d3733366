package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

// parse runs the service's real start-up path up to --print-config, which returns before
// anything is started, and returns the parsed configuration and the exit code.
func parse(t *testing.T, args ...string) (config, int, string) {
	t.Helper()
	var cfg config
	var stdout, stderr bytes.Buffer
	code := server.Run(context.Background(), spec, &cfg, func(context.Context, *server.Service) error {
		t.Fatal("setup ran for --print-config")
		return nil
	}, append(args, "--print-config"), &stdout, &stderr)
	return cfg, code, stderr.String()
}

func TestConfigDefaults(t *testing.T) {
	for _, env := range []string{"BOXSCORE_HTTP_ADDR", "BOXSCORE_GRPC_ADDR", "BOXSCORE_ADMIN_ADDR", "BOXSCORE_STREAM", "BOXSCORE_PUBLISH_RETRY_BUDGET"} {
		t.Setenv(env, "") // restored after the test
		if err := os.Unsetenv(env); err != nil {
			t.Fatal(err)
		}
	}
	cfg, code, stderr := parse(t)
	if code != server.ExitOK {
		t.Fatalf("parse defaults: exit %d: %s", code, stderr)
	}
	if cfg.HTTPAddr != "127.0.0.1:8080" || cfg.Server.GRPCAddr != "127.0.0.1:9001" || cfg.Server.AdminAddr != "127.0.0.1:9101" {
		t.Errorf("addresses %s %s %s, want the documented 8080, 9001, 9101 on 127.0.0.1", cfg.HTTPAddr, cfg.Server.GRPCAddr, cfg.Server.AdminAddr)
	}
	if cfg.Publish.RetryBudget != 10*time.Second || cfg.Stream.Name != "boxscore-stats" {
		t.Errorf("retry budget %s, stream %q; want 10s and boxscore-stats", cfg.Publish.RetryBudget, cfg.Stream.Name)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("BOXSCORE_HTTP_ADDR", "0.0.0.0:18080")
	t.Setenv("BOXSCORE_INSECURE", "true")
	t.Setenv("BOXSCORE_PUBLISH_RETRY_BUDGET", "4s")
	t.Setenv("BOXSCORE_STREAM", "other")
	cfg, code, stderr := parse(t)
	if code != server.ExitOK {
		t.Fatalf("parse: exit %d: %s", code, stderr)
	}
	if cfg.HTTPAddr != "0.0.0.0:18080" || cfg.Publish.RetryBudget != 4*time.Second || cfg.Stream.Name != "other" {
		t.Errorf("config %+v does not follow the environment", cfg)
	}
}

func TestAnonymousProducersOnlyOnLoopbackOrInsecure(t *testing.T) {
	for _, env := range []string{"BOXSCORE_HTTP_ADDR", "BOXSCORE_GRPC_ADDR", "BOXSCORE_INSECURE", "BOXSCORE_API_KEYS_FILE", "BOXSCORE_OIDC_ISSUER"} {
		t.Setenv(env, "")
		if err := os.Unsetenv(env); err != nil {
			t.Fatal(err)
		}
	}
	keys := t.TempDir() + "/keys.yaml"
	if err := os.WriteFile(keys, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{nil, true}, // loopback: the quickstart
		{[]string{"--http-addr=0.0.0.0:8080"}, false},
		{[]string{"--grpc-addr=0.0.0.0:9001", "--insecure"}, true},
		{[]string{"--http-addr=:8080", "--api-keys-file=" + keys}, true},
		{[]string{"--http-addr=10.0.0.1:8080", "--oidc-issuer=https://id.example"}, false}, // no audience
		{[]string{"--http-addr=10.0.0.1:8080", "--oidc-issuer=https://id.example", "--oidc-audience=boxscore"}, true},
	} {
		_, code, stderr := parse(t, c.args...)
		if (code == server.ExitOK) != c.ok {
			t.Errorf("%v: exit %d (%s), want accepted: %t", c.args, code, stderr, c.ok)
		}
		if !c.ok && c.args[0] == "--http-addr=0.0.0.0:8080" && !strings.Contains(stderr, "without producer authentication") {
			t.Errorf("%v: %q does not say why", c.args, stderr)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	_, code, stderr := parse(t, "--publish-retry-budget=0s", "--stream=")
	if code != server.ExitUsage || !strings.Contains(stderr, "publish-retry-budget") || !strings.Contains(stderr, "stream name") {
		t.Errorf("parse of a bad config: exit %d, %q; want %d and errors about the retry budget and the stream name", code, stderr, server.ExitUsage)
	}
}
