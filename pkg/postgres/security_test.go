package postgres_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload/tlstest"
)

// caFile writes a CA certificate of a CA made for the test (not the local server's).
func caFile(t *testing.T) string {
	t.Helper()
	ca, err := tlstest.NewCA("not the database's CA")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckURLRefusesUnverifiedTLSBeyondLoopback(t *testing.T) {
	ca := caFile(t)
	for _, tc := range []struct {
		url  string
		ok   bool
		note string
	}{
		{"postgres://app@db.example.com:5432/boxscore?sslmode=disable", false, "plaintext"},
		{"postgres://app@db.example.com:5432/boxscore", false, "default prefer: falls back to plaintext"},
		{"postgres://app@db.example.com:5432/boxscore?sslmode=require", false, "encrypted, server not verified"},
		{"postgres://app@10.0.0.7:5432/boxscore?sslmode=prefer", false, "an IP beyond loopback"},
		{"postgres://app@127.0.0.1,db.example.com/boxscore?sslmode=disable", false, "a second host beyond loopback"},
		{"host=db.example.com user=app sslmode=allow", false, "keyword/value form"},
		{"postgres://app@db.example.com/boxscore?sslmode=verify-full&sslrootcert=" + url.QueryEscape(ca), true, "verify-full"},
		{"postgres://app@db.example.com/boxscore?sslmode=verify-ca&sslrootcert=" + url.QueryEscape(ca), true, "verify-ca"},
		{"postgres://app@db.example.com/boxscore?sslmode=require&sslrootcert=" + url.QueryEscape(ca), true, "require with a CA is verify-ca"},
		{"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable", true, "loopback"},
		{"postgres://postgres@localhost/boxscore?sslmode=disable", true, "localhost"},
		{"host=/var/run/postgresql user=app sslmode=disable", true, "Unix socket"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			err := postgres.CheckURL(tc.url, false)
			if tc.ok && err != nil {
				t.Errorf("CheckURL(%q) = %v, want nil", tc.url, err)
			}
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "verify-full") || !strings.Contains(err.Error(), "--insecure") {
					t.Errorf("CheckURL(%q) = %v, want a refusal saying what to do", tc.url, err)
				}
				if err := postgres.CheckURL(tc.url, true); err != nil {
					t.Errorf("CheckURL(%q, insecure) = %v, want nil", tc.url, err)
				}
				if _, err := postgres.NewPool(t.Context(), tc.url); err == nil {
					t.Errorf("NewPool(%q) succeeded, want the same refusal", tc.url)
				}
			}
		})
	}
}

func TestVerifyFullFailsClosedAgainstAnUntrustedServer(t *testing.T) {
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", caFile(t))
	u.RawQuery = q.Encode()
	pool, err := postgres.NewPool(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = pool.Ping(ctx)
	if err == nil {
		t.Fatal("Ping with sslmode=verify-full and a CA that did not sign the server's certificate succeeded")
	}
	t.Logf("Ping = %v", err)
	// Either the server has TLS with a certificate of another CA, or no TLS at all: both
	// must stop the connection, never fall back to plaintext.
	if !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "refused TLS") && !strings.Contains(err.Error(), "server refused") {
		t.Errorf("Ping = %v, want a TLS verification failure", err)
	}
}

// passwordCatcher is a PostgreSQL server's front door that asks each client for a
// cleartext password, keeps it and turns the client away: it shows what a pool sends as
// its password, which a real server never reveals.
type passwordCatcher struct {
	ln        net.Listener
	mu        sync.Mutex
	passwords []string
	users     []string
}

func startPasswordCatcher(t *testing.T) *passwordCatcher {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &passwordCatcher{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return c
}

func (c *passwordCatcher) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	backend := pgproto3.NewBackend(conn, conn)
	for {
		msg, err := backend.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte("N")); err != nil {
				return
			}
			continue
		case *pgproto3.StartupMessage:
			c.mu.Lock()
			c.users = append(c.users, m.Parameters["user"])
			c.mu.Unlock()
		default:
			return
		}
		break
	}
	backend.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := backend.Flush(); err != nil {
		return
	}
	if err := backend.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return
	}
	msg, err := backend.Receive()
	if err != nil {
		return
	}
	if pw, ok := msg.(*pgproto3.PasswordMessage); ok {
		c.mu.Lock()
		c.passwords = append(c.passwords, pw.Password)
		c.mu.Unlock()
	}
	backend.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "caught"})
	_ = backend.Flush()
}

func (c *passwordCatcher) seen() (users, passwords []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.users...), append([]string(nil), c.passwords...)
}

// awsEnv gives the AWS SDK's default chain static credentials and nothing else to find.
func awsEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDBOXSCORETEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "boxscore-test-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestIAMAuthSendsAFreshSignedTokenPerConnection(t *testing.T) {
	awsEnv(t)
	catcher := startPasswordCatcher(t)
	dbURL := "postgres://boxscore_loader@" + catcher.ln.Addr().String() + "/boxscore?sslmode=disable&password=never-sent"
	iam := postgres.IAMAuth{Enabled: true, Region: "eu-west-1"}
	pool, err := postgres.NewPool(t.Context(), dbURL, iam.Options(false)...)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // tokens are signed to the second
		}
		if err := pool.Ping(t.Context()); err == nil {
			t.Fatal("Ping through the catcher succeeded")
		}
	}
	users, passwords := catcher.seen()
	if len(passwords) < 2 {
		t.Fatalf("caught %d passwords, want one per connection attempt (2+)", len(passwords))
	}
	for i, pw := range passwords {
		for _, want := range []string{
			catcher.ln.Addr().String() + "?Action=connect", "DBUser=boxscore_loader",
			"X-Amz-Credential=AKIDBOXSCORETEST%2F", "%2Feu-west-1%2Frds-db%2Faws4_request", "X-Amz-Signature=",
		} {
			if !strings.Contains(pw, want) {
				t.Errorf("password %d = %q, want an RDS IAM token containing %q", i, pw, want)
			}
		}
		if users[i] != "boxscore_loader" {
			t.Errorf("user %d = %q", i, users[i])
		}
	}
	if passwords[0] == passwords[len(passwords)-1] {
		t.Error("the same token was sent on connections a second apart: not made per connection")
	}
}

func TestIAMAuthNeedsARegion(t *testing.T) {
	awsEnv(t)
	_, err := postgres.NewPool(t.Context(), "postgres://app@127.0.0.1:5432/x?sslmode=disable", postgres.WithIAMAuth(""))
	if err == nil || !strings.Contains(err.Error(), "database-iam-region") {
		t.Fatalf("NewPool with IAM auth and no region = %v, want an error naming --database-iam-region", err)
	}
}

func TestIAMAuthConnectsToARealServer(t *testing.T) {
	// The local server trusts loopback connections and ignores the token: this shows the
	// hook leaves every other part of the connection alone.
	awsEnv(t)
	pool, err := postgres.NewPool(t.Context(), pgtest.NewDatabase(t), postgres.WithIAMAuth("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var one int
	if err := pool.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestBeforeConnectHooksSetTheUserAndPasswordSent(t *testing.T) {
	// Redshift IAM authentication replaces the URL's user and password per connection
	// through this hook: what the hook sets is what the server receives.
	catcher := startPasswordCatcher(t)
	dbURL := "postgres://url_user@" + catcher.ln.Addr().String() + "/dev?sslmode=disable&password=never-sent"
	var calls int
	pool, err := postgres.NewPool(t.Context(), dbURL,
		postgres.WithBeforeConnect(func(_ context.Context, cc *pgx.ConnConfig) error {
			calls++
			cc.User, cc.Password = "IAMR:loader", "temporary-password"
			return nil
		}),
		postgres.WithBeforeConnect(func(_ context.Context, cc *pgx.ConnConfig) error {
			cc.Password += "-second-hook"
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(t.Context()); err == nil {
		t.Fatal("Ping through the catcher succeeded")
	}
	users, passwords := catcher.seen()
	if len(passwords) == 0 || calls == 0 {
		t.Fatalf("caught %d passwords after %d hook calls", len(passwords), calls)
	}
	if users[0] != "IAMR:loader" || passwords[0] != "temporary-password-second-hook" {
		t.Fatalf("server received user %q password %q, want the hooks' IAMR:loader / temporary-password-second-hook", users[0], passwords[0])
	}
}

func TestBeforeConnectHookErrorFailsTheConnection(t *testing.T) {
	pool, err := postgres.NewPool(t.Context(), pgtest.NewDatabase(t),
		postgres.WithBeforeConnect(func(context.Context, *pgx.ConnConfig) error {
			return errors.New("no credentials today")
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "no credentials today") {
		t.Fatalf("Ping with a failing hook = %v, want the hook's error", err)
	}
}
