package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

func parse(t *testing.T, args ...string) (config, error) {
	t.Helper()
	var cfg config
	parser, err := kong.New(&cfg, append(kongOptions(), kong.Exit(func(int) { t.Fatal("kong tried to exit") }))...)
	if err != nil {
		t.Fatalf("kong.New: %v", err)
	}
	_, err = parser.Parse(args)
	return cfg, err
}

func TestConfigDefaults(t *testing.T) {
	for _, env := range []string{"BOXSCORE_HTTP_ADDR", "BOXSCORE_GRPC_ADDR", "BOXSCORE_ADMIN_ADDR", "BOXSCORE_STREAM", "BOXSCORE_PUBLISH_RETRY_BUDGET"} {
		t.Setenv(env, "") // restored after the test
		if err := os.Unsetenv(env); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := parse(t)
	if err != nil {
		t.Fatalf("parse defaults: %v", err)
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
	t.Setenv("BOXSCORE_PUBLISH_RETRY_BUDGET", "4s")
	t.Setenv("BOXSCORE_STREAM", "other")
	cfg, err := parse(t)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if cfg.HTTPAddr != "0.0.0.0:18080" || cfg.Publish.RetryBudget != 4*time.Second || cfg.Stream.Name != "other" {
		t.Errorf("config %+v does not follow the environment", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := parse(t, "--publish-retry-budget=0s", "--stream=")
	if err == nil || !strings.Contains(err.Error(), "publish-retry-budget") || !strings.Contains(err.Error(), "stream name") {
		t.Errorf("parse of a bad config: %v, want errors about the retry budget and the stream name", err)
	}
}
