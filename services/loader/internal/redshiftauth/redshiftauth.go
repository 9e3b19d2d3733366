// Package redshiftauth authenticates the loader to Amazon Redshift with temporary IAM
// credentials instead of a stored password: redshift:GetClusterCredentialsWithIAM for a
// provisioned cluster, redshift-serverless:GetCredentials for a Serverless workgroup, both
// signed with the AWS default credential chain (IRSA on EKS).
//
// A temporary password is needed only to open a connection (an open connection outlives
// it), and each call to the API is a round trip and counts against its rate limit, so the
// credentials are cached and shared by every new connection of the pool until a third of
// their life remains; then the next connection refreshes them, one call at a time however
// many connections open together. A refresh that fails while the cached password is still
// valid keeps the cached one (a warning is logged); otherwise the connection fails with
// the API's error. The password is never logged nor put into an error.
package redshiftauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/redshiftserverless"
	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/postgres"
)

// The range of DurationSeconds both APIs accept (900-3600 seconds).
const (
	MinDuration = 15 * time.Minute
	MaxDuration = time.Hour
)

const (
	// fetchTimeout bounds one call to the credentials API. The call outlives the
	// connection attempt that started it (others may wait for it), so it has its own bound.
	fetchTimeout = 30 * time.Second
	// staleFloor is how long cached credentials must still be valid to be used when their
	// refresh failed: enough to open a connection with them.
	staleFloor = 30 * time.Second
)

// Config is the Redshift IAM authentication part of the loader's configuration; embed it
// (`embed:""`) beside the database URL and call Validate from the service's Validate.
type Config struct {
	IAM       bool          `name:"redshift-iam" env:"BOXSCORE_REDSHIFT_IAM" help:"Connect to Redshift with temporary IAM credentials (GetClusterCredentialsWithIAM with --redshift-cluster-id, or Serverless GetCredentials with --redshift-workgroup) from the AWS default credentials (IRSA on EKS) instead of the URL's user and password. The database user is the IAM identity's (IAMR:<role>)."`
	ClusterID string        `name:"redshift-cluster-id" env:"BOXSCORE_REDSHIFT_CLUSTER_ID" help:"Identifier of the provisioned Redshift cluster for --redshift-iam."`
	Workgroup string        `name:"redshift-workgroup" env:"BOXSCORE_REDSHIFT_WORKGROUP" help:"Name of the Redshift Serverless workgroup for --redshift-iam."`
	Duration  time.Duration `name:"redshift-credentials-duration" env:"BOXSCORE_REDSHIFT_CREDENTIALS_DURATION" default:"15m" help:"Lifetime asked for the temporary Redshift credentials (15m..1h); they are refreshed when a third of it remains."`
}

// Validate checks the configuration: with IAM, exactly one of the cluster and the
// workgroup and a duration the APIs accept; without, neither target (a forgotten
// --redshift-iam would otherwise connect with the URL's password silently).
func (c Config) Validate() error {
	if !c.IAM {
		if c.ClusterID != "" || c.Workgroup != "" {
			return errors.New("redshift-cluster-id and redshift-workgroup are used only with --redshift-iam (BOXSCORE_REDSHIFT_IAM=true)")
		}
		return nil
	}
	var errs []error
	switch {
	case c.ClusterID == "" && c.Workgroup == "":
		errs = append(errs, errors.New("redshift-iam needs --redshift-cluster-id (provisioned) or --redshift-workgroup (Serverless)"))
	case c.ClusterID != "" && c.Workgroup != "":
		errs = append(errs, errors.New("redshift-iam takes one of --redshift-cluster-id and --redshift-workgroup, not both"))
	}
	if c.Duration < MinDuration || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("redshift-credentials-duration %s is outside %s..%s", c.Duration, MinDuration, MaxDuration))
	}
	return errors.Join(errs...)
}

// Options returns the warehouse pool's options for this configuration: none without IAM,
// else a hook giving every new connection the cached temporary credentials. An invalid
// configuration (Validate's error) fails each connection attempt rather than the caller.
func (c Config) Options(opts ...SourceOption) []postgres.Option {
	if !c.IAM {
		return nil
	}
	src, err := NewSource(c, opts...)
	if err != nil {
		return []postgres.Option{postgres.WithBeforeConnect(func(context.Context, *pgx.ConnConfig) error { return err })}
	}
	return []postgres.Option{postgres.WithBeforeConnect(src.BeforeConnect)}
}

// Credentials are a database user and its temporary password.
type Credentials struct {
	User       string
	Password   string
	Expiration time.Time
}

// String leaves the password out, so printing credentials never leaks it.
func (c Credentials) String() string {
	return fmt.Sprintf("Redshift user %s until %s", c.User, c.Expiration.UTC().Format(time.RFC3339))
}

// LogValue leaves the password out of structured logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.User), slog.Time("expiration", c.Expiration))
}

// SourceOption configures a Source.
type SourceOption func(*Source)

// WithAWSConfig calls the APIs with cfg (credentials, region, BaseEndpoint) instead of the
// AWS default configuration.
func WithAWSConfig(cfg aws.Config) SourceOption {
	return func(s *Source) { c := cfg; s.awsCfg = &c }
}

// WithClock reads the time from now instead of time.Now (tests).
func WithClock(now func() time.Time) SourceOption {
	return func(s *Source) { s.now = now }
}

// WithLogger logs refresh failures that cached credentials cover to logger instead of
// slog.Default().
func WithLogger(logger *slog.Logger) SourceOption {
	return func(s *Source) { s.logger = logger }
}

// Source hands out temporary Redshift credentials, cached per database and refreshed
// before they expire. Safe for concurrent use.
type Source struct {
	cfg    Config
	now    func() time.Time
	logger *slog.Logger

	initMu  sync.Mutex  // guards awsCfg and fetcher, made on the first API call
	awsCfg  *aws.Config // loaded on the first call unless given
	fetcher fetchFunc

	mu       sync.Mutex // guards cached and inflight
	cached   map[string]Credentials
	inflight map[string]*call
}

// fetchFunc asks the API for credentials for a database.
type fetchFunc func(ctx context.Context, database string) (Credentials, error)

// call is one API request that concurrent callers wait for.
type call struct {
	done  chan struct{}
	creds Credentials
	err   error
}

// NewSource returns a source for cfg, which must be valid (Validate) with IAM enabled.
func NewSource(cfg Config, opts ...SourceOption) (*Source, error) {
	if !cfg.IAM {
		return nil, errors.New("redshift IAM credentials: --redshift-iam is off")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, now: time.Now, logger: slog.Default(), cached: map[string]Credentials{}, inflight: map[string]*call{}}
	for _, opt := range opts {
		opt(s)
	}
	return s, nil
}

// BeforeConnect is a pgx pool BeforeConnect hook (postgres.WithBeforeConnect): it sets
// the connection's user and password to temporary credentials for its database.
func (s *Source) BeforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	creds, err := s.Credentials(ctx, cc.Database)
	if err != nil {
		return err
	}
	cc.User, cc.Password = creds.User, creds.Password
	return nil
}

// Credentials returns credentials for database: the cached ones while more than a third
// of their lifetime remains, else fresh ones from the API (one call however many callers
// ask together; a caller whose ctx ends stops waiting, the call goes on for the others).
func (s *Source) Credentials(ctx context.Context, database string) (Credentials, error) {
	if database == "" {
		return Credentials{}, errors.New("redshift IAM credentials: the database URL names no database")
	}
	s.mu.Lock()
	if c, ok := s.cached[database]; ok && s.now().Before(c.Expiration.Add(-s.refreshMargin())) {
		s.mu.Unlock()
		return c, nil
	}
	cl, ok := s.inflight[database]
	if !ok {
		cl = &call{done: make(chan struct{})}
		s.inflight[database] = cl
		go s.refresh(context.WithoutCancel(ctx), database, cl)
	}
	s.mu.Unlock()
	select {
	case <-cl.done:
		return cl.creds, cl.err
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("redshift IAM credentials for database %s: %w", database, context.Cause(ctx))
	}
}

// refreshMargin is how long before their expiration credentials are replaced.
func (s *Source) refreshMargin() time.Duration {
	return s.cfg.Duration / 3
}

// refresh makes the API call for cl, stores its result and wakes its waiters.
func (s *Source) refresh(ctx context.Context, database string, cl *call) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	creds, err := s.fetch(ctx, database)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, database)
	switch {
	case err == nil:
		s.cached[database] = creds
		cl.creds = creds
	case s.now().Before(s.cached[database].Expiration.Add(-staleFloor)):
		old := s.cached[database]
		s.logger.WarnContext(ctx, "Redshift IAM credentials refresh failed; using the cached ones until they expire",
			slog.String("database", database), slog.Any("credentials", old), slog.Any("error", err))
		cl.creds = old
	default:
		cl.err = err
	}
	close(cl.done)
}

// fetch calls the API for the configured cluster or workgroup.
func (s *Source) fetch(ctx context.Context, database string) (Credentials, error) {
	f, err := s.fetchFunc(ctx)
	if err != nil {
		return Credentials{}, err
	}
	return f(ctx, database)
}

// fetchFunc returns the function calling the API, made once (the AWS configuration is
// loaded on first use: the default chain's files, environment and IRSA token).
func (s *Source) fetchFunc(ctx context.Context) (fetchFunc, error) {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.fetcher != nil {
		return s.fetcher, nil
	}
	if s.awsCfg == nil {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("redshift IAM credentials: AWS configuration: %w", err)
		}
		s.awsCfg = &cfg
	}
	if s.awsCfg.Region == "" {
		return nil, errors.New("redshift IAM credentials need an AWS region: set AWS_REGION (the region of the cluster or workgroup)")
	}
	durationSeconds := int32(s.cfg.Duration / time.Second)
	if s.cfg.ClusterID != "" {
		client := redshift.NewFromConfig(*s.awsCfg)
		cluster := s.cfg.ClusterID
		s.fetcher = func(ctx context.Context, database string) (Credentials, error) {
			out, err := client.GetClusterCredentialsWithIAM(ctx, &redshift.GetClusterCredentialsWithIAMInput{
				ClusterIdentifier: aws.String(cluster), DbName: aws.String(database), DurationSeconds: aws.Int32(durationSeconds),
			})
			if err != nil {
				return Credentials{}, fmt.Errorf("redshift IAM credentials for cluster %s database %s: %w", cluster, database, err)
			}
			return s.credentials(out.DbUser, out.DbPassword, out.Expiration, "cluster "+cluster)
		}
	} else {
		client := redshiftserverless.NewFromConfig(*s.awsCfg)
		workgroup := s.cfg.Workgroup
		s.fetcher = func(ctx context.Context, database string) (Credentials, error) {
			out, err := client.GetCredentials(ctx, &redshiftserverless.GetCredentialsInput{
				WorkgroupName: aws.String(workgroup), DbName: aws.String(database), DurationSeconds: aws.Int32(durationSeconds),
			})
			if err != nil {
				return Credentials{}, fmt.Errorf("redshift IAM credentials for workgroup %s database %s: %w", workgroup, database, err)
			}
			return s.credentials(out.DbUser, out.DbPassword, out.Expiration, "workgroup "+workgroup)
		}
	}
	return s.fetcher, nil
}

// credentials checks an API answer. An answer without an expiration is taken to last the
// duration asked for, counted from now.
func (s *Source) credentials(user, password *string, expiration *time.Time, target string) (Credentials, error) {
	if aws.ToString(user) == "" || aws.ToString(password) == "" {
		return Credentials{}, fmt.Errorf("redshift IAM credentials for %s: the answer has no user or no password", target)
	}
	exp := s.now().Add(s.cfg.Duration)
	if expiration != nil {
		exp = *expiration
	}
	return Credentials{User: *user, Password: *password, Expiration: exp}, nil
}
