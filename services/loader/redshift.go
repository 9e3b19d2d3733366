package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/s3local"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/redshiftauth"
	"github.com/boxscore-dev/boxscore/services/loader/internal/s3stage"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// redshiftConfig is the loader's Redshift configuration (--warehouse-engine redshift).
type redshiftConfig struct {
	StagingURI  string        `name:"redshift-staging-uri" env:"BOXSCORE_REDSHIFT_STAGING_URI" placeholder:"s3://bucket/prefix/" help:"S3 prefix where each load's gzip CSV parts and manifest are staged for COPY (removed after the commit; give the prefix a lifecycle rule as a backstop)."`
	CopyRoleARN string        `name:"redshift-copy-role-arn" env:"BOXSCORE_REDSHIFT_COPY_ROLE_ARN" placeholder:"arn:aws:iam::ACCOUNT:role/NAME" help:"IAM role Redshift assumes to read the staged objects (COPY ... IAM_ROLE)."`
	BatchWindow time.Duration `name:"redshift-batch-window" env:"BOXSCORE_REDSHIFT_BATCH_WINDOW" default:"2s" help:"Loads arriving within this window are committed together: one COPY, one MERGE, every shard's checkpoint (100ms..60s)."`
	S3Endpoint  string        `name:"s3-endpoint" env:"BOXSCORE_S3_ENDPOINT" help:"S3 endpoint for the staging (empty: AWS; a local S3-compatible server for development, path-style)."`
	S3Region    string        `name:"s3-region" env:"AWS_REGION" help:"Region of the staging bucket (default: the AWS configuration's, else us-east-1)."`

	Auth redshiftauth.Config `embed:""`
}

// validate checks the Redshift flags for engine: required and in range with redshift,
// absent with postgresql (a forgotten --warehouse-engine would otherwise be silent).
func (c *redshiftConfig) validate(engine string, rdsIAM postgres.IAMAuth) error {
	if engine != migrations.EngineRedshift {
		if c.StagingURI != "" || c.CopyRoleARN != "" || c.Auth.IAM {
			return errors.New("--redshift-staging-uri, --redshift-copy-role-arn and --redshift-iam need --warehouse-engine redshift")
		}
		return nil
	}
	var errs []error
	if !strings.HasPrefix(c.StagingURI, "s3://") || len(c.StagingURI) <= len("s3://") {
		errs = append(errs, fmt.Errorf("redshift-staging-uri %q: want s3://bucket/prefix/", c.StagingURI))
	}
	if !strings.HasPrefix(c.CopyRoleARN, "arn:") {
		errs = append(errs, fmt.Errorf("redshift-copy-role-arn %q: want arn:aws:iam::ACCOUNT:role/NAME", c.CopyRoleARN))
	}
	if c.BatchWindow < warehouse.MinRedshiftWindow || c.BatchWindow > warehouse.MaxRedshiftWindow {
		errs = append(errs, fmt.Errorf("redshift-batch-window %s: want %s..%s", c.BatchWindow, warehouse.MinRedshiftWindow, warehouse.MaxRedshiftWindow))
	}
	if rdsIAM.Enabled && c.Auth.IAM {
		errs = append(errs, errors.New("--database-iam-auth (RDS) and --redshift-iam cannot both be set"))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// newStore builds the Redshift store: the S3 client (default AWS chain, IRSA on EKS, or
// the local endpoint), the stager, and a loader id unique to this process for the keys.
func (c *redshiftConfig) newStore(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (*warehouse.RedshiftStore, error) {
	client, err := s3local.NewS3Client(ctx, c.S3Endpoint, c.S3Region)
	if err != nil {
		return nil, fmt.Errorf("redshift staging: %w", err)
	}
	stager, err := s3stage.New(client, c.StagingURI)
	if err != nil {
		return nil, err
	}
	id, err := loaderID()
	if err != nil {
		return nil, err
	}
	return warehouse.NewRedshiftStore(pool, warehouse.RedshiftConfig{
		Schema: schema, Stager: stager, CopyRoleARN: c.CopyRoleARN, LoaderID: id, Window: c.BatchWindow, Logger: logger,
	})
}

// loaderID is the host name (the pod's) and a random suffix: two processes never share it.
func loaderID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "loader"
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", fmt.Errorf("loader id: %w", err)
	}
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, host)
	return clean + "-" + hex.EncodeToString(suffix), nil
}

// withExecMode adds default_query_exec_mode=exec to a database URL (or keyword/value
// string) unless it names a mode already. Redshift gets every statement as pgx's "exec"
// mode sends it: the extended protocol with an unnamed statement and text-format
// arguments, in one round trip, as lib/pq and the JDBC driver talk to it — no named
// prepared statements, no Describe to answer first, no type introspection. Not the simple
// protocol: pgx inlines arguments there only when the server reports
// standard_conforming_strings=on and client_encoding=UTF8, and Redshift reports neither
// (it reads a backslash in a literal as an escape), so every statement with an argument
// would be refused.
func withExecMode(databaseURL string) (string, error) {
	const param = "default_query_exec_mode"
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		u, err := url.Parse(databaseURL)
		if err != nil {
			return "", fmt.Errorf("database-url: %w", err)
		}
		q := u.Query()
		if q.Get(param) == "" {
			q.Set(param, "exec")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	if strings.Contains(databaseURL, param+"=") {
		return databaseURL, nil
	}
	return strings.TrimSpace(databaseURL + " " + param + "=exec"), nil
}
