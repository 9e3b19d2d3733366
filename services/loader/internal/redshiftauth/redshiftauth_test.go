package redshiftauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/redshiftauth"
)

// fakeClock is a settable clock for the cache's expiry decisions.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var epoch = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// target is one of the two kinds of Redshift, with what its API call must carry.
type target struct {
	name       string
	cfg        redshiftauth.Config
	api        string
	params     map[string]string // expected request parameters for database "dev", 15 minutes
	signingFor string            // the SigV4 service name in the credential scope
}

func targets() []target {
	return []target{
		{
			name: "provisioned",
			cfg:  redshiftauth.Config{IAM: true, ClusterID: "boxscore-dw", Duration: 15 * time.Minute},
			api:  "GetClusterCredentialsWithIAM",
			params: map[string]string{
				"Action": "GetClusterCredentialsWithIAM", "Version": "2012-12-01",
				"ClusterIdentifier": "boxscore-dw", "DbName": "dev", "DurationSeconds": "900",
			},
			signingFor: "/eu-west-1/redshift/aws4_request",
		},
		{
			name: "serverless",
			cfg:  redshiftauth.Config{IAM: true, Workgroup: "boxscore-wg", Duration: 15 * time.Minute},
			api:  "GetCredentials",
			params: map[string]string{
				"workgroupName": "boxscore-wg", "dbName": "dev", "durationSeconds": "900",
			},
			signingFor: "/eu-west-1/redshift-serverless/aws4_request",
		},
	}
}

func newSource(t *testing.T, cfg redshiftauth.Config, aws *fakeAWS, clock *fakeClock, opts ...redshiftauth.SourceOption) *redshiftauth.Source {
	t.Helper()
	opts = append([]redshiftauth.SourceOption{redshiftauth.WithAWSConfig(aws.awsConfig()), redshiftauth.WithClock(clock.Now)}, opts...)
	src, err := redshiftauth.NewSource(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func connConfig(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	cc, err := pgx.ParseConfig("postgres://url_user:url_password@example.redshift.amazonaws.com:5439/dev?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func TestBeforeConnectSendsTheTemporaryCredentials(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			clock := &fakeClock{now: epoch}
			aws := newFakeAWS(t, answer{user: "IAMR:boxscore-loader", password: "tmp<&>pw-1", expiration: epoch.Add(15 * time.Minute)})
			src := newSource(t, tg.cfg, aws, clock)
			cc := connConfig(t)
			if err := src.BeforeConnect(t.Context(), cc); err != nil {
				t.Fatal(err)
			}
			if cc.User != "IAMR:boxscore-loader" || cc.Password != "tmp<&>pw-1" {
				t.Fatalf("connection user/password = %q/%q, want the API's IAMR:boxscore-loader / tmp<&>pw-1", cc.User, cc.Password)
			}
			if cc.Host != "example.redshift.amazonaws.com" || cc.Port != 5439 || cc.Database != "dev" {
				t.Errorf("hook changed the address: %s:%d/%s", cc.Host, cc.Port, cc.Database)
			}
			calls := aws.recorded()
			if len(calls) != 1 {
				t.Fatalf("%d API calls, want 1", len(calls))
			}
			if calls[0].api != tg.api {
				t.Errorf("API = %q, want %q", calls[0].api, tg.api)
			}
			for k, want := range tg.params {
				if got := calls[0].params[k]; got != want {
					t.Errorf("request parameter %s = %q, want %q (all: %v)", k, got, want, calls[0].params)
				}
			}
			for _, want := range []string{"AWS4-HMAC-SHA256", "Credential=AKIDREDSHIFTTEST/", tg.signingFor, "Signature="} {
				if !strings.Contains(calls[0].authorization, want) {
					t.Errorf("Authorization %q lacks %q: not signed for this service", calls[0].authorization, want)
				}
			}
		})
	}
}

func TestCredentialsAreCachedAndRefreshedBeforeTheyExpire(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			clock := &fakeClock{now: epoch}
			aws := newFakeAWS(t,
				answer{user: "IAMR:loader", password: "pw-1", expiration: epoch.Add(15 * time.Minute)},
				answer{user: "IAMR:loader", password: "pw-2", expiration: epoch.Add(25 * time.Minute)},
			)
			src := newSource(t, tg.cfg, aws, clock)
			password := func() string {
				t.Helper()
				c, err := src.Credentials(t.Context(), "dev")
				if err != nil {
					t.Fatal(err)
				}
				return c.Password
			}
			if pw := password(); pw != "pw-1" {
				t.Fatalf("first password %q", pw)
			}
			// A third of the 15 minutes is the margin: until 10 minutes in, the cache answers.
			clock.Advance(10*time.Minute - time.Second)
			if pw := password(); pw != "pw-1" || len(aws.recorded()) != 1 {
				t.Fatalf("at 9m59s: password %q after %d calls, want the cached pw-1 and 1 call", pw, len(aws.recorded()))
			}
			clock.Advance(2 * time.Second) // 4m59s left: refresh, although pw-1 still works
			if pw := password(); pw != "pw-2" || len(aws.recorded()) != 2 {
				t.Fatalf("at 10m01s: password %q after %d calls, want a fresh pw-2 and 2 calls", pw, len(aws.recorded()))
			}
			if pw := password(); pw != "pw-2" || len(aws.recorded()) != 2 {
				t.Fatalf("right after the refresh: password %q after %d calls, want pw-2 cached", pw, len(aws.recorded()))
			}
		})
	}
}

func TestAPIErrorsFailTheConnection(t *testing.T) {
	codes := map[string]string{"provisioned": "ClusterNotFound", "serverless": "ResourceNotFoundException"}
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			clock := &fakeClock{now: epoch}
			aws := newFakeAWS(t, answer{errCode: codes[tg.name]})
			src := newSource(t, tg.cfg, aws, clock)
			err := src.BeforeConnect(t.Context(), connConfig(t))
			if err == nil {
				t.Fatal("BeforeConnect succeeded on an API error")
			}
			target := tg.cfg.ClusterID + tg.cfg.Workgroup
			for _, want := range []string{codes[tg.name], "the fake says no", target, "database dev"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestFailedRefreshKeepsValidCachedCredentialsThenFails(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			clock := &fakeClock{now: epoch}
			aws := newFakeAWS(t, answer{user: "IAMR:loader", password: "secret-pw-1", expiration: epoch.Add(15 * time.Minute)})
			var logs bytes.Buffer
			src := newSource(t, tg.cfg, aws, clock, redshiftauth.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			if _, err := src.Credentials(t.Context(), "dev"); err != nil {
				t.Fatal(err)
			}
			aws.setAnswers(answer{errCode: "ThrottlingFake"})
			clock.Advance(12 * time.Minute) // in the margin, pw-1 valid 3 more minutes
			c, err := src.Credentials(t.Context(), "dev")
			if err != nil || c.Password != "secret-pw-1" {
				t.Fatalf("failed refresh with valid cached credentials = %v, %v; want the cached ones", c, err)
			}
			if !strings.Contains(logs.String(), "refresh failed") || !strings.Contains(logs.String(), "ThrottlingFake") {
				t.Errorf("the failed refresh was not logged with its cause: %s", logs.String())
			}
			if strings.Contains(logs.String(), "secret-pw-1") {
				t.Errorf("the log carries the password: %s", logs.String())
			}
			clock.Advance(3*time.Minute - 20*time.Second) // 20s left: too little to rely on
			if _, err := src.Credentials(t.Context(), "dev"); err == nil || !strings.Contains(err.Error(), "ThrottlingFake") {
				t.Fatalf("failed refresh with nearly expired credentials = %v, want the API's error", err)
			}
			if n := len(aws.recorded()); n != 3 {
				t.Errorf("%d API calls, want 3 (first, two failed refreshes)", n)
			}
		})
	}
}

func TestConcurrentConnectsMakeOneCall(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			clock := &fakeClock{now: epoch}
			aws := newFakeAWS(t, answer{user: "IAMR:loader", password: "pw-1", expiration: epoch.Add(15 * time.Minute)})
			aws.block = make(chan struct{})
			src := newSource(t, tg.cfg, aws, clock)
			const connects = 16
			var started, done sync.WaitGroup
			errs := make(chan error, connects)
			for range connects {
				started.Add(1)
				done.Add(1)
				cc := connConfig(t)
				go func() {
					defer done.Done()
					started.Done()
					if err := src.BeforeConnect(t.Context(), cc); err != nil {
						errs <- err
						return
					}
					if cc.Password != "pw-1" {
						errs <- fmt.Errorf("password %q", cc.Password)
					}
				}()
			}
			started.Wait()
			time.Sleep(50 * time.Millisecond) // let every connect reach the pending call
			close(aws.block)
			done.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := len(aws.recorded()); n != 1 {
				t.Fatalf("%d concurrent connects made %d API calls, want 1", connects, n)
			}
		})
	}
}

func TestAWaiterWhoseContextEndsStopsWaitingAndTheCallCompletesForOthers(t *testing.T) {
	tg := targets()[0]
	clock := &fakeClock{now: epoch}
	aws := newFakeAWS(t, answer{user: "IAMR:loader", password: "pw-1", expiration: epoch.Add(15 * time.Minute)})
	aws.block = make(chan struct{})
	src := newSource(t, tg.cfg, aws, clock)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := src.Credentials(ctx, "dev"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Credentials with an ending context = %v, want DeadlineExceeded", err)
	}
	close(aws.block)
	c, err := src.Credentials(t.Context(), "dev")
	if err != nil || c.Password != "pw-1" {
		t.Fatalf("Credentials after = %v, %v", c, err)
	}
	if n := len(aws.recorded()); n != 1 {
		t.Errorf("%d API calls, want 1: the abandoned call's answer serves the next caller", n)
	}
}

func TestCredentialsNeverPrintThePassword(t *testing.T) {
	c := redshiftauth.Credentials{User: "IAMR:loader", Password: "very-secret", Expiration: epoch}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("got", "credentials", c)
	for _, out := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c), logs.String()} {
		if strings.Contains(out, "very-secret") || !strings.Contains(out, "IAMR:loader") {
			t.Errorf("printed credentials %q: want the user and no password", out)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  redshiftauth.Config
		want string // "" for valid
	}{
		{"off", redshiftauth.Config{Duration: 15 * time.Minute}, ""},
		{"cluster", redshiftauth.Config{IAM: true, ClusterID: "c", Duration: 15 * time.Minute}, ""},
		{"workgroup an hour", redshiftauth.Config{IAM: true, Workgroup: "w", Duration: time.Hour}, ""},
		{"neither", redshiftauth.Config{IAM: true, Duration: 15 * time.Minute}, "needs --redshift-cluster-id"},
		{"both", redshiftauth.Config{IAM: true, ClusterID: "c", Workgroup: "w", Duration: 15 * time.Minute}, "not both"},
		{"too short", redshiftauth.Config{IAM: true, ClusterID: "c", Duration: 14 * time.Minute}, "outside 15m0s..1h0m0s"},
		{"too long", redshiftauth.Config{IAM: true, ClusterID: "c", Duration: 61 * time.Minute}, "outside"},
		{"target without iam", redshiftauth.Config{ClusterID: "c", Duration: 15 * time.Minute}, "only with --redshift-iam"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("Validate = %v, want nil", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNoRegionIsAnError(t *testing.T) {
	aws := newFakeAWS(t)
	cfg := aws.awsConfig()
	cfg.Region = ""
	src, err := redshiftauth.NewSource(targets()[0].cfg, redshiftauth.WithAWSConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Credentials(t.Context(), "dev"); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("Credentials without a region = %v, want an error naming AWS_REGION", err)
	}
	if n := len(aws.recorded()); n != 0 {
		t.Errorf("%d API calls without a region", n)
	}
}

func TestOptions(t *testing.T) {
	if opts := (redshiftauth.Config{Duration: 15 * time.Minute}).Options(); len(opts) != 0 {
		t.Errorf("Options without IAM = %d options, want none", len(opts))
	}
	// An invalid configuration fails each connection, never the caller.
	pool, err := postgres.NewPool(t.Context(), pgtest.NewDatabase(t), redshiftauth.Config{IAM: true, Duration: 15 * time.Minute}.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "needs --redshift-cluster-id") {
		t.Fatalf("Ping with an invalid IAM configuration = %v, want its validation error", err)
	}
}

func TestPoolConnectsAsTheIAMUser(t *testing.T) {
	// The local server trusts loopback connections, so the password is not checked, but
	// the user is: the pool must log in as the user the API named, to the URL's database.
	dbURL := pgtest.NewDatabase(t)
	admin, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) }) // after the role's drop
	role := fmt.Sprintf("IAMR:boxscore-test-%d", time.Now().UnixNano())
	if _, err := admin.Exec(t.Context(), fmt.Sprintf(`CREATE ROLE %q LOGIN`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), fmt.Sprintf(`DROP ROLE IF EXISTS %q`, role)); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	aws := newFakeAWS(t, answer{user: role, password: "pw-1", expiration: time.Now().Add(15 * time.Minute)})
	cfg := targets()[1].cfg
	pool, err := postgres.NewPool(t.Context(), dbURL, cfg.Options(redshiftauth.WithAWSConfig(aws.awsConfig()))...)
	if err != nil {
		t.Fatal(err)
	}
	var user, database string
	err = pool.QueryRow(t.Context(), "SELECT current_user, current_database()").Scan(&user, &database)
	pool.Close()
	if err != nil {
		t.Fatal(err)
	}
	if user != role {
		t.Errorf("connected as %q, want the API's user %q", user, role)
	}
	calls := aws.recorded()
	if len(calls) != 1 || calls[0].params["dbName"] != database {
		t.Errorf("API calls %+v, want one for database %q", calls, database)
	}
}
