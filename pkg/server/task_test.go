package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

// taskSpec is testSpec with a one-shot "migrate" task that reports the flag it was given.
func taskSpec(cfg *testConfig, fail error) server.Spec {
	spec := testSpec
	spec.Tasks = []server.Task{{
		Name: "migrate",
		Help: "apply the schema",
		Run: func(_ context.Context, _ *slog.Logger, stdout io.Writer) error {
			if fail != nil {
				return fail
			}
			_, err := fmt.Fprintf(stdout, "migrated %s\n", cfg.DatabaseURL)
			return err
		},
	}}
	return spec
}

func TestRunATaskParsesTheServiceFlagsRunsOnceAndExits(t *testing.T) {
	for _, args := range [][]string{
		{"migrate", "--database-url", "postgres://ddl@db/x", "--log-level", "error"},
		{"--database-url", "postgres://ddl@db/x", "migrate", "--log-level", "error"},
	} {
		var cfg testConfig
		var stdout, stderr bytes.Buffer
		code := server.Run(t.Context(), taskSpec(&cfg, nil), &cfg, noSetup(t), args, &stdout, &stderr)
		if code != server.ExitOK || stdout.String() != "migrated postgres://ddl@db/x\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and the task's report", args, code, stdout.String(), stderr.String())
		}
	}
}

func TestRunAFailedTaskExits1WithItsError(t *testing.T) {
	var cfg testConfig
	var stderr bytes.Buffer
	code := server.Run(t.Context(), taskSpec(&cfg, errors.New("schema is newer")), &cfg, noSetup(t),
		[]string{"migrate", "--log-level", "error"}, &bytes.Buffer{}, &stderr)
	if code != server.ExitFailed || !strings.Contains(stderr.String(), "svc: migrate: schema is newer") {
		t.Errorf("exit %d, stderr %q; want %d naming the task and its error", code, stderr.String(), server.ExitFailed)
	}
}

func TestRunWithTasksStillServesByDefault(t *testing.T) {
	var cfg testConfig
	var stderr bytes.Buffer
	ran := false
	code := server.Run(t.Context(), taskSpec(&cfg, nil), &cfg, func(context.Context, *server.Service) error {
		ran = true
		return errors.New("setup reached")
	}, []string{"--log-level", "error", "--identity", "x"}, &bytes.Buffer{}, &stderr)
	if !ran || code != server.ExitFailed {
		t.Errorf("exit %d, setup ran %v, stderr %q; want the service set up (serve is the default command)", code, ran, stderr.String())
	}
	var help bytes.Buffer
	if code := server.Run(t.Context(), taskSpec(&cfg, nil), &testConfig{}, noSetup(t), []string{"--help"}, &help, &bytes.Buffer{}); code != server.ExitOK ||
		!strings.Contains(help.String(), "migrate") || !strings.Contains(help.String(), "serve") {
		t.Errorf("help (exit %d) does not list serve and migrate:\n%s", code, help.String())
	}
}
