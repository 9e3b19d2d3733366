package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/s3local"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations/redshifttest"
)

// The Redshift flags are required with --warehouse-engine redshift, checked, and refused
// without it.
func TestRedshiftFlagsAreChecked(t *testing.T) {
	t.Parallel()
	ok := []string{"--warehouse-engine", "redshift", "--redshift-staging-uri", "s3://staging/loads/",
		"--redshift-copy-role-arn", "arn:aws:iam::123456789012:role/copy"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--warehouse-engine", "redshift"}, "redshift-staging-uri"},
		{append(ok[:4:4], "--redshift-copy-role-arn", "copy"), "redshift-copy-role-arn"},
		{append(ok, "--redshift-batch-window", "10ms"), "redshift-batch-window"},
		{append(ok, "--redshift-batch-window", "2m"), "redshift-batch-window"},
		{append(ok, "--redshift-iam"), "redshift-cluster-id"},
		{append(ok, "--redshift-iam", "--redshift-cluster-id", "c", "--database-iam-auth"), "cannot both"},
		{[]string{"--redshift-staging-uri", "s3://staging/"}, "need --warehouse-engine redshift"},
		{[]string{"--warehouse-engine", "oracle"}, "warehouse-engine"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != server.ExitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, server.ExitUsage, c.want)
		}
	}
}

// With --warehouse-engine redshift the loader checks the Redshift schema (here the
// Redshift migrations applied on PostgreSQL), builds its S3 staging and its window worker,
// and serves.
func TestStartsOnARedshiftSchema(t *testing.T) {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_REGION"} {
		t.Setenv(name, "")
	}
	db := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := redshifttest.Apply(t.Context(), pool, "boxscore"); err != nil {
		t.Fatal(err)
	}
	s3, err := s3local.Start(context.Background(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s3.Close(); err != nil {
			t.Error(err)
		}
	}()
	code, _, stderr := run(t, "--no-migrate", "--database-url", db, "--warehouse-engine", "redshift",
		"--redshift-staging-uri", "s3://staging/loads/", "--redshift-copy-role-arn", "arn:aws:iam::123456789012:role/copy",
		"--s3-endpoint", s3.URL(), "--redshift-batch-window", "100ms")
	if code != server.ExitOK {
		t.Fatalf("start on a Redshift schema: exit %d, stderr %q", code, stderr)
	}
	// The PostgreSQL engine refuses that schema: it is not its own.
	if code, _, _ := run(t, "--no-migrate", "--database-url", db); code != server.ExitFailed {
		t.Errorf("postgresql engine on the Redshift schema: exit %d, want %d", code, server.ExitFailed)
	}
}

func TestWithSimpleProtocol(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u@h:5439/dev?sslmode=verify-full":     "postgres://u@h:5439/dev?default_query_exec_mode=exec&sslmode=verify-full",
		"postgres://u@h/dev?default_query_exec_mode=exec": "postgres://u@h/dev?default_query_exec_mode=exec",
		"host=h dbname=dev":                               "host=h dbname=dev default_query_exec_mode=exec",
	} {
		got, err := withExecMode(in)
		if err != nil || got != want {
			t.Errorf("withExecMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestLoaderIDsDiffer(t *testing.T) {
	t.Parallel()
	a, errA := loaderID()
	b, errB := loaderID()
	if errA != nil || errB != nil || a == b || strings.ContainsAny(a, "/ ") {
		t.Errorf("loader ids %q, %q (%v, %v): want two distinct ids without '/' or spaces", a, b, errA, errB)
	}
}
