// Package s3test serves the project's S3-compatible server (pkg/s3local) to tests: an
// in-memory store over HTTP on loopback, its buckets, a client that reads nothing from the
// environment, and a listing of what is stored.
package s3test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/boxscore-dev/boxscore/pkg/s3local"
)

// Region is the region of the clients Client returns (any is accepted by the server).
const Region = "us-east-1"

// Start serves an in-memory S3 for the test, closed at cleanup, with buckets created, and
// returns it with a client of it (see Client).
func Start(t testing.TB, buckets ...string) (*s3local.Server, *s3.Client) {
	t.Helper()
	srv, err := s3local.Start(context.Background(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatalf("local S3: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("local S3: close: %v", err)
		}
	})
	client := Client(srv.URL())
	for _, b := range buckets {
		if err := s3local.EnsureBucket(context.Background(), client, b, Region); err != nil {
			t.Fatalf("local S3: bucket %s: %v", b, err)
		}
	}
	return srv, client
}

// Client is an S3 client of endpoint with static credentials, built without reading the
// environment, so that tests may run in parallel whatever the developer's AWS settings.
func Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region: Region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider("local", "local", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Keys lists the keys stored in bucket (up to 1,000, one listing call).
func Keys(t testing.TB, client *s3.Client, bucket string) []string {
	t.Helper()
	out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list s3://%s: %v", bucket, err)
	}
	keys := make([]string, 0, len(out.Contents))
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// NoCredentialsInEnv keeps the developer's AWS settings out of a test of code that reads
// them (the SDK's default chain): variables unset, config and credentials files pointed at
// nothing. It uses t.Setenv, so the test cannot be parallel.
func NoCredentialsInEnv(t testing.TB) {
	t.Helper()
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(name, "")
		if err := os.Unsetenv(name); err != nil {
			t.Fatalf("unset %s: %v", name, err)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}
