// Package s3local is a local, S3-compatible object store for development and tests, and the
// S3 client helper every Boxscore command that reads or writes S3 uses.
//
// The server is github.com/johannesboyne/gofakes3 over HTTP on a loopback address: in memory
// for tests, or files under a directory for the local stack, so that one process can upload
// a season (`boxscore s3 put`) and another replay it (`boxscore replay s3://...`). It has no
// authentication (any credentials are accepted) and so refuses to listen beyond loopback.
package s3local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/spf13/afero"
)

// Server is a running local S3.
type Server struct {
	url      string
	http     *http.Server
	done     chan struct{} // closed when Serve has returned
	serveErr error
	stopOnce sync.Once
	stopErr  error
}

// Start serves an S3-compatible API on addr, which must be a loopback address such as
// "127.0.0.1:4569" (port 0 picks a free port; URL tells which). With dir empty the objects
// live in memory; otherwise they are files under dir/buckets/<bucket>/<key> (metadata under
// dir/metadata), kept across restarts. The server stops when ctx is done or on Close.
func Start(ctx context.Context, addr, dir string) (*Server, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	backend, err := newBackend(dir)
	if err != nil {
		return nil, err
	}
	faker := gofakes3.New(backend,
		gofakes3.WithLogger(slogLogger{}),
		gofakes3.WithAutoBucket(false), // a missing bucket is an error, as on S3
	)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{
		url: "http://" + ln.Addr().String(),
		http: &http.Server{
			Handler:           faker.Server(),
			ReadHeaderTimeout: 10 * time.Second,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close() // the error is kept for Close's callers
		case <-s.done:
		}
	}()
	return s, nil
}

// URL is the endpoint to give S3 clients, e.g. "http://127.0.0.1:4569".
func (s *Server) URL() string { return s.url }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server, letting requests in flight finish for up to 5 seconds.
func (s *Server) Close() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			s.stopErr = fmt.Errorf("stop local S3: %w", errors.Join(err, s.http.Close()))
		}
		<-s.done
		if s.serveErr != nil {
			s.stopErr = errors.Join(s.stopErr, fmt.Errorf("local S3: %w", s.serveErr))
		}
	})
	return s.stopErr
}

func newBackend(dir string) (gofakes3.Backend, error) {
	if dir == "" {
		return s3mem.New(), nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("local S3 directory: %w", err)
	}
	// A base-path filesystem: keys cannot reach outside dir (a key with ".." is refused).
	backend, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), dir))
	if err != nil {
		return nil, fmt.Errorf("local S3 file store in %s: %w", dir, err)
	}
	return backend, nil
}

// checkLoopback refuses addresses beyond this machine: the store takes any credentials.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("local S3 address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("local S3 address %q: the store has no authentication, so it listens on loopback only (e.g. 127.0.0.1:4569)", addr)
}

// slogLogger sends gofakes3's errors and warnings to slog; its per-request INFO lines are
// dropped (one per request is noise in the local stack's logs).
type slogLogger struct{}

func (slogLogger) Print(level gofakes3.LogLevel, v ...any) {
	switch level {
	case gofakes3.LogErr:
		slog.Error("local S3: " + strings.TrimSpace(fmt.Sprintln(v...)))
	case gofakes3.LogWarn:
		slog.Warn("local S3: " + strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

// NewS3Client builds an S3 client from the default AWS credential chain (IRSA on EKS,
// environment, shared config). With an endpoint (a local S3 such as this package's, or
// MinIO) it
//
//   - addresses buckets by path (http://host/bucket/key): a local store has no DNS per bucket;
//   - uses static dummy credentials unless the environment names some of its own;
//   - never asks the EC2 instance metadata service for anything: off AWS that is a call to a
//     link-local address that can only time out, and no traffic may leave for it;
//   - computes request checksums only where S3 requires them, as stores other than AWS
//     do not all know the newer checksum headers.
func NewS3Client(ctx context.Context, endpoint, region string) (*s3.Client, error) {
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if endpoint != "" {
		opts = append(opts,
			awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled),
			awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		)
		if !hasExplicitCredentials() {
			opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// hasExplicitCredentials reports whether the environment names credentials of its own
// (static keys, a web identity token as IRSA provides, a profile, a container endpoint).
func hasExplicitCredentials() bool {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		if os.Getenv(name) != "" {
			return true
		}
	}
	return false
}

// ParseURI splits "s3://bucket/key" into bucket and key.
func ParseURI(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3://bucket/key URI", uri)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" || key == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/key URI: it needs both a bucket and a key", uri)
	}
	return bucket, key, nil
}

// IsURI reports whether s names an S3 object (s3://...) rather than a local path.
func IsURI(s string) bool { return strings.HasPrefix(s, "s3://") }

// Open returns the body of the object at uri ("s3://bucket/key"); the caller closes it.
func Open(ctx context.Context, client *s3.Client, uri string) (io.ReadCloser, error) {
	bucket, key, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", uri, err)
	}
	return out.Body, nil
}
