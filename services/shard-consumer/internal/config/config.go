// Package config is the shard-consumer's configuration: flags, BOXSCORE_* environment
// variables and defaults, in one struct.
package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

// Config is the whole configuration of the shard-consumer.
type Config struct {
	server.Base `embed:""`
	Stream      stream.Config `embed:""`

	TransformerAddr   string               `name:"transformer-addr" env:"BOXSCORE_TRANSFORMER_ADDR" default:"127.0.0.1:9002" help:"gRPC target of the transformer: host:port (resolved by DNS, calls spread over every address, e.g. a headless Service) or a gRPC target URI such as dns:///host:port."`
	LoaderAddr        string               `name:"loader-addr" env:"BOXSCORE_LOADER_ADDR" default:"127.0.0.1:9003" help:"gRPC target of the loader: host:port (resolved by DNS, calls spread over every address) or a gRPC target URI."`
	ConsumerID        string               `name:"consumer-id" env:"BOXSCORE_CONSUMER_ID" help:"Identity of this replica in the lease table, checkpoints and logs; never used by two live processes at once. Stable across restarts (the chart sets the pod's name), a restarted replica takes its shards back at once. Default: $POD_NAME when set, else hostname-pid-random (unique per process)."`
	PollInterval      time.Duration        `name:"poll-interval" env:"BOXSCORE_POLL_INTERVAL" default:"200ms" help:"Time between two GetRecords calls on one shard once it is caught up (Kinesis allows 5 per second per shard, so at least 200ms); while behind, the next call is made as soon as Kinesis' limits allow."`
	ShardSyncInterval time.Duration        `name:"shard-sync-interval" env:"BOXSCORE_SHARD_SYNC_INTERVAL" default:"10s" help:"How often the shard list is refreshed to find new (resharded) shards."`
	RPCTimeout        time.Duration        `name:"rpc-timeout" env:"BOXSCORE_RPC_TIMEOUT" default:"10s" help:"Deadline of one Transform or Load call; keep it below the shutdown timeout, since a batch in flight at SIGTERM gets one more RPC timeout to commit."`
	Batch             consumer.BatchConfig `embed:""`
	Read              consumer.ReadConfig  `embed:""`
	RetryInitial      time.Duration        `name:"retry-initial" env:"BOXSCORE_RETRY_INITIAL" default:"100ms" help:"First wait after a transient failure."`
	RetryMax          time.Duration        `name:"retry-max" env:"BOXSCORE_RETRY_MAX" default:"2s" help:"Longest wait between retries of a transient failure (a restarted transformer or loader, a PostgreSQL failover, Kinesis throttling): once the cause is gone, a shard flows again within about this long."`
	StallAfter        time.Duration        `name:"stall-after" env:"BOXSCORE_STALL_AFTER" default:"1m" help:"A shard failing without progress (transient retries, reader restarts) for this long is reported stalled: metric boxscore.consumer.shard_stalled, an error log, /leases and readiness."`

	LeaseDatabaseURL string           `name:"lease-database-url" env:"BOXSCORE_LEASE_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable" help:"PostgreSQL holding the shard leases (the warehouse database by default; any database every replica reaches). Beyond loopback it needs sslmode=verify-full (or verify-ca) and sslrootcert=/path/ca.pem, unless --insecure."`
	DatabaseIAM      postgres.IAMAuth `embed:""`
	LeaseSchema      string           `name:"lease-schema" env:"BOXSCORE_LEASE_SCHEMA" default:"boxscore_lease" help:"Schema of the lease table."`
	// Migrate at start is the development default, like the loader's (see its --migrate):
	// the chart turns it off and runs `shard-consumer migrate` in its pre-install/pre-upgrade
	// Job.
	Migrate           bool          `name:"migrate" env:"BOXSCORE_MIGRATE" default:"true" negatable:"" help:"Apply the lease schema's migrations at start (development; in production run 'shard-consumer migrate' before and use --no-migrate). Without it the consumer only checks the lease schema's version and refuses to start on another than its own."`
	LeaseFailoverTime time.Duration `name:"lease-failover-time" env:"BOXSCORE_LEASE_FAILOVER_TIME" default:"6s" help:"A lease not renewed for this long (on the taker's own clock) is taken over; leases are renewed every third of it and the table read every twelfth, so the shards of a dead replica are held again within 1.25× this time."`
}

// Validate reports every problem with the config.
func (c *Config) Validate() error {
	errs := []error{c.Server.Validate(), c.Stream.Validate(), c.Batch.Validate(), c.Read.Validate(c.Batch)}
	if c.TransformerAddr == "" {
		errs = append(errs, errors.New("transformer-addr is required"))
	}
	if c.LoaderAddr == "" {
		errs = append(errs, errors.New("loader-addr is required"))
	}
	if minPoll := time.Second / limits.KinesisShardGetRecordsPerSecond; c.PollInterval < minPoll {
		errs = append(errs, fmt.Errorf("poll-interval %s is below %s: Kinesis answers %d GetRecords calls per second per shard", c.PollInterval, minPoll, limits.KinesisShardGetRecordsPerSecond))
	}
	if c.ShardSyncInterval < time.Second {
		errs = append(errs, errors.New("shard-sync-interval must be at least 1s"))
	}
	if c.RPCTimeout <= 0 {
		errs = append(errs, errors.New("rpc-timeout must be positive"))
	}
	if c.LeaseDatabaseURL == "" {
		errs = append(errs, errors.New("lease-database-url is required"))
	} else if err := postgres.CheckURL(c.LeaseDatabaseURL, c.Server.Insecure); err != nil {
		errs = append(errs, fmt.Errorf("lease-database-url: %w", err))
	}
	if err := lease.ValidateSchema(c.LeaseSchema); err != nil {
		errs = append(errs, err)
	}
	if c.LeaseFailoverTime < time.Second {
		errs = append(errs, errors.New("lease-failover-time must be at least 1s"))
	}
	if c.StallAfter <= 0 {
		errs = append(errs, errors.New("stall-after must be positive"))
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, errors.New("retry-initial must be positive and at most retry-max"))
	}
	return errors.Join(errs...)
}

// podNameEnv names the variable that a Kubernetes manifest commonly fills with the pod's
// name (downward API metadata.name).
const podNameEnv = "POD_NAME"

// Resolve derives the defaults that depend on the process, once, before anything reads
// the config: the replica's identity, --consumer-id (BOXSCORE_CONSUMER_ID), else POD_NAME,
// else hostname-pid-random.
//
// An identity must never be used by two live processes at once. A stable one (the pod's
// name, which survives a container restart and is unique among live pods) lets a restarted
// replica take its leases back at once, under new tokens. Without one the default is
// unique per process: the random part keeps it so even where the pid is always 1, since
// a host name alone is shared by every process of a host outside Kubernetes; such a
// replica's shards resume after the lease failover time instead.
func (c *Config) Resolve() error {
	if c.ConsumerID != "" {
		return nil
	}
	if pod := os.Getenv(podNameEnv); pod != "" {
		c.ConsumerID = pod
		return nil
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("consumer-id: no host name to derive it from (set --consumer-id): %w", err)
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails on Linux
	c.ConsumerID = fmt.Sprintf("%s-%d-%x", host, os.Getpid(), suffix)
	return nil
}

// Lease returns the lease manager's part of the config.
func (c *Config) Lease() lease.Config {
	return lease.Config{Stream: c.Stream.Name, WorkerID: c.ConsumerID, FailoverTime: c.LeaseFailoverTime}
}

// Consumer returns the consumer's part of the config.
func (c *Config) Consumer() consumer.Config {
	return consumer.Config{
		Stream:            c.Stream.Name,
		ConsumerID:        c.ConsumerID,
		PollInterval:      c.PollInterval,
		ShardSyncInterval: c.ShardSyncInterval,
		RPCTimeout:        c.RPCTimeout,
		Batch:             c.Batch,
		Read:              c.Read,
		Retry:             consumer.RetryPolicy{Initial: c.RetryInitial, Max: c.RetryMax},
		StallAfter:        c.StallAfter,
	}
}

// LeaseDatabaseOptions are the lease store pool's options from the parsed flags: RDS IAM
// authentication (--database-iam-auth) and --insecure.
func (c *Config) LeaseDatabaseOptions() []postgres.Option {
	return c.DatabaseIAM.Options(c.Server.Insecure)
}
