package s3local_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/boxscore-dev/boxscore/pkg/s3local"
	"github.com/boxscore-dev/boxscore/pkg/testutil/s3test"
)

const demoCSV = "../../k8s/local/demo/dodgers-2024-mar-jun.csv"

func start(t *testing.T, dir string) *s3local.Server {
	t.Helper()
	srv, err := s3local.Start(context.Background(), "127.0.0.1:0", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

func get(t *testing.T, client *s3.Client, uri string) []byte {
	t.Helper()
	body, err := s3local.Open(context.Background(), client, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestPutThenGetOverHTTP(t *testing.T) {
	s3test.NoCredentialsInEnv(t)
	want, err := os.ReadFile(demoCSV)
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []struct{ name, dir string }{{"memory", ""}, {"files", t.TempDir()}} {
		t.Run(backend.name, func(t *testing.T) {
			srv := start(t, backend.dir)
			if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") || strings.HasSuffix(srv.URL(), ":0") {
				t.Fatalf("URL = %q, want the port picked", srv.URL())
			}
			var out bytes.Buffer
			put := &s3local.PutCommand{File: demoCSV, Destination: "s3://seasons/2024/dodgers.csv", Endpoint: srv.URL(), Region: "us-east-1", ContentType: "text/csv"}
			if err := put.Run(context.Background(), &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "s3://seasons/2024/dodgers.csv") {
				t.Errorf("put printed %q", out.String())
			}
			// Again: the bucket exists now, and the object is replaced.
			if err := put.Run(context.Background(), io.Discard, io.Discard); err != nil {
				t.Fatalf("second put: %v", err)
			}
			client, err := s3local.NewS3Client(context.Background(), srv.URL(), "us-east-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, client, "s3://seasons/2024/dodgers.csv"); !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes back, want the %d uploaded", len(got), len(want))
			}
			_, err = s3local.Open(context.Background(), client, "s3://seasons/2024/missing.csv")
			if err == nil || !strings.Contains(err.Error(), "missing.csv") {
				t.Fatalf("missing object: err = %v", err)
			}
		})
	}
}

func TestFilesOutliveTheServer(t *testing.T) {
	s3test.NoCredentialsInEnv(t)
	dir := t.TempDir()
	first := start(t, dir)
	put := &s3local.PutCommand{File: demoCSV, Destination: "s3://seasons/dodgers.csv", Endpoint: first.URL(), Region: "us-east-1"}
	if err := put.Run(context.Background(), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "buckets", "seasons", "dodgers.csv")); err != nil {
		t.Fatalf("the object is not a file under the directory: %v", err)
	}
	second := start(t, dir)
	client, err := s3local.NewS3Client(context.Background(), second.URL(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(demoCSV)
	if got := get(t, client, "s3://seasons/dodgers.csv"); !bytes.Equal(got, want) {
		t.Fatal("a restarted server does not serve the object uploaded before")
	}
}

func TestServeCommandRunsUntilCancelledAndCreatesBuckets(t *testing.T) {
	s3test.NoCredentialsInEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &lockedBuffer{}
	cmd := &s3local.ServeCommand{Addr: "127.0.0.1:0", Dir: t.TempDir(), Buckets: []string{"seasons"}}
	done := make(chan error, 1)
	go func() { done <- cmd.Run(ctx, stdout, io.Discard) }()
	url := waitForURL(t, stdout)
	client, err := s3local.NewS3Client(ctx, url, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("seasons")}); err != nil {
		t.Fatalf("bucket made by --bucket: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("still serving after stop")
	}
}

func TestRefusesNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{":4569", "0.0.0.0:4569", "192.0.2.1:4569", "nonsense"} {
		if srv, err := s3local.Start(context.Background(), addr, ""); err == nil {
			_ = srv.Close()
			t.Errorf("Start(%q) succeeded, want refused", addr)
		}
	}
}

// With an endpoint the client must never reach for the EC2 metadata service, even when the
// credential chain finds nothing (a profile without keys falls through to IMDS on AWS).
func TestClientWithEndpointNeverCallsIMDS(t *testing.T) {
	s3test.NoCredentialsInEnv(t)
	var imdsCalls atomic.Int32
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		imdsCalls.Add(1)
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer imds.Close()
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	config := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(config, []byte("[profile keyless]\nregion = us-east-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", config)
	t.Setenv("AWS_PROFILE", "keyless")

	srv := start(t, "")
	client, err := s3local.NewS3Client(context.Background(), srv.URL(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err == nil {
		t.Fatal("listing buckets without credentials succeeded; the test profile should have none")
	}
	if n := imdsCalls.Load(); n != 0 {
		t.Fatalf("the client called the metadata service %d times", n)
	}
}

func TestParseURI(t *testing.T) {
	bucket, key, err := s3local.ParseURI("s3://seasons/2024/dodgers.csv")
	if err != nil || bucket != "seasons" || key != "2024/dodgers.csv" {
		t.Fatalf("got %q %q %v", bucket, key, err)
	}
	for _, bad := range []string{"seasons/dodgers.csv", "s3://", "s3://seasons", "s3://seasons/", "s3:///key"} {
		if _, _, err := s3local.ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) accepted", bad)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingURL = regexp.MustCompile(`serving (http://127\.0\.0\.1:\d+)`)

func waitForURL(t *testing.T, out *lockedBuffer) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingURL.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serve printed no URL: %q", out.String())
	return ""
}
