package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/config"
)

func printConfig(t *testing.T, args ...string) (config.Config, map[string]any, int, string) {
	t.Helper()
	var cfg config.Config
	var stdout, stderr bytes.Buffer
	code := server.Run(context.Background(), spec, &cfg, func(context.Context, *server.Service) error {
		t.Fatal("setup ran for --print-config")
		return nil
	}, append(args, "--print-config"), &stdout, &stderr)
	var printed map[string]any
	if code == server.ExitOK {
		if err := json.Unmarshal(stdout.Bytes(), &printed); err != nil {
			t.Fatalf("--print-config: %v\n%s", err, stdout.String())
		}
	}
	return cfg, printed, code, stderr.String()
}

// The replica's identity is derived once, before anything reads the configuration, and is
// the one printed: no getter changes the configuration later.
func TestConsumerIDIsResolvedOnceAndPrinted(t *testing.T) {
	// A database beyond loopback without a verified certificate needs --insecure.
	if _, _, code, stderr := printConfig(t, "--lease-database-url", "postgres://lease:s3cret@db/leases"); code != server.ExitUsage || !strings.Contains(stderr, "verify-full") {
		t.Errorf("plaintext lease database beyond loopback: exit %d (%s), want a usage error", code, stderr)
	}
	cfg, printed, code, stderr := printConfig(t, "--lease-database-url", "postgres://lease:s3cret@db/leases", "--insecure", "--database-iam-auth", "--database-iam-region", "eu-west-1")
	if code != server.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if printed["database-iam-auth"] != true || printed["database-iam-region"] != "eu-west-1" {
		t.Errorf("database-iam-auth/region printed as %v/%v", printed["database-iam-auth"], printed["database-iam-region"])
	}
	if cfg.ConsumerID == "" || printed["consumer-id"] != cfg.ConsumerID {
		t.Errorf("consumer id %q, printed %v: want one derived id, printed as is", cfg.ConsumerID, printed["consumer-id"])
	}
	if cfg.Lease().WorkerID != cfg.ConsumerID || cfg.Consumer().ConsumerID != cfg.ConsumerID {
		t.Errorf("the lease manager (%q) and the consumer (%q) see another identity than %q", cfg.Lease().WorkerID, cfg.Consumer().ConsumerID, cfg.ConsumerID)
	}
	if url, _ := printed["lease-database-url"].(string); strings.Contains(url, "s3cret") || !strings.Contains(url, server.Redacted) {
		t.Errorf("lease-database-url printed as %q, want its password redacted", url)
	}
	other, _, _, _ := printConfig(t)
	if other.ConsumerID == cfg.ConsumerID {
		t.Errorf("two processes' configurations derived the same id %q", cfg.ConsumerID)
	}
	given, _, _, _ := printConfig(t, "--consumer-id", "replica-a")
	if given.ConsumerID != "replica-a" {
		t.Errorf("--consumer-id replica-a gave %q", given.ConsumerID)
	}
}

// A batch bigger than a Transform message can carry is refused at start-up, with the
// limits named, instead of failing every call at run time.
func TestBatchBoundsAreCheckedAgainstTheTransformMessageAtStartUp(t *testing.T) {
	_, _, code, stderr := printConfig(t, "--batch-max-bytes", "33554432", "--batch-max-records", "20000")
	if code != server.ExitUsage || !strings.Contains(stderr, "Transform message") || !strings.Contains(stderr, "GetRecords") {
		t.Errorf("exit %d, stderr %q; want a usage error naming the Transform message and GetRecords limits", code, stderr)
	}
}

// By default a shard is read at Kinesis' own limits: GetRecords asks for 10,000 records
// whatever the batch size, polls 200ms apart once caught up, and a shard holds a bounded
// read-ahead; a read-ahead smaller than a batch is refused at start-up.
func TestReadDefaultsAreKinesisLimitsAndTheReadAheadIsCheckedAgainstTheBatch(t *testing.T) {
	cfg, _, code, stderr := printConfig(t)
	if code != server.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if cfg.Read.GetRecordsLimit != 10_000 || cfg.PollInterval.Milliseconds() != 200 || cfg.Read.ReadAheadRecords < cfg.Batch.MaxRecords || cfg.Read.ReadAheadBytes < cfg.Batch.MaxBytes {
		t.Errorf("defaults: get-records-limit %d, poll-interval %s, read-ahead %d records / %d bytes for batches of %d / %d",
			cfg.Read.GetRecordsLimit, cfg.PollInterval, cfg.Read.ReadAheadRecords, cfg.Read.ReadAheadBytes, cfg.Batch.MaxRecords, cfg.Batch.MaxBytes)
	}
	_, _, code, stderr = printConfig(t, "--batch-max-records", "2000", "--read-ahead-records", "1000")
	if code != server.ExitUsage || !strings.Contains(stderr, "read-ahead-records") {
		t.Errorf("read-ahead below the batch: exit %d, stderr %q; want a usage error naming read-ahead-records", code, stderr)
	}
	_, _, code, stderr = printConfig(t, "--get-records-limit", "10001")
	if code != server.ExitUsage || !strings.Contains(stderr, "get-records-limit") {
		t.Errorf("get-records-limit above Kinesis': exit %d, stderr %q; want a usage error", code, stderr)
	}
}
