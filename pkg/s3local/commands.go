package s3local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ServeCommand is `boxscore s3 serve`: a local S3 until SIGINT or SIGTERM.
type ServeCommand struct {
	Addr    string   `name:"addr" env:"BOXSCORE_S3_ADDR" default:"127.0.0.1:4569" help:"Loopback address to listen on (port 0: any free port)."`
	Dir     string   `name:"dir" env:"BOXSCORE_S3_DIR" default:".run/s3" type:"path" help:"Directory of the objects (dir/buckets/<bucket>/<key>), kept across restarts."`
	Buckets []string `name:"bucket" help:"Bucket to create at start if missing (repeatable)."`
}

// Help is the long help of the command.
func (c *ServeCommand) Help() string {
	return `Serves an S3-compatible API (gofakes3) over HTTP for the local stack: 'boxscore s3 put'
uploads to it and 'boxscore replay s3://...' reads from it, from other processes. It accepts
any credentials, so it listens on loopback only. Point S3 clients at it with
--s3-endpoint/--endpoint http://127.0.0.1:4569 (path-style addressing).`
}

// Run serves until ctx is done or the process gets SIGINT or SIGTERM.
func (c *ServeCommand) Run(ctx context.Context, stdout, _ io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := Start(ctx, c.Addr, c.Dir)
	if err != nil {
		return err
	}
	for _, bucket := range c.Buckets {
		if err := createBucketDirect(ctx, srv.URL(), bucket); err != nil {
			return errors.Join(err, srv.Close())
		}
	}
	if _, err := fmt.Fprintf(stdout, "local S3 serving %s (objects in %s)\n", srv.URL(), c.Dir); err != nil {
		return errors.Join(fmt.Errorf("write: %w", err), srv.Close())
	}
	select {
	case <-ctx.Done():
	case <-srv.Done(): // stopped by itself: Close reports why
	}
	return srv.Close()
}

func createBucketDirect(ctx context.Context, endpoint, bucket string) error {
	client, err := NewS3Client(ctx, endpoint, "us-east-1")
	if err != nil {
		return err
	}
	return EnsureBucket(ctx, client, bucket, "us-east-1")
}

// PutCommand is `boxscore s3 put FILE s3://bucket/key`: uploads a file, creating the bucket
// if it is missing.
type PutCommand struct {
	File        string `arg:"" name:"file" type:"existingfile" help:"File to upload."`
	Destination string `arg:"" name:"destination" help:"Where to put it: s3://bucket/key."`
	Endpoint    string `name:"endpoint" env:"BOXSCORE_S3_ENDPOINT" help:"S3 endpoint override (the local S3: http://127.0.0.1:4569). Empty: AWS."`
	Region      string `name:"aws-region" env:"AWS_REGION" default:"us-east-1" help:"AWS region of the bucket."`
	ContentType string `name:"content-type" default:"text/csv" help:"Content-Type of the object."`
}

// Run uploads the file and prints where it went.
func (c *PutCommand) Run(ctx context.Context, stdout, _ io.Writer) error {
	bucket, key, err := ParseURI(c.Destination)
	if err != nil {
		return err
	}
	client, err := NewS3Client(ctx, c.Endpoint, c.Region)
	if err != nil {
		return err
	}
	if err := EnsureBucket(ctx, client, bucket, c.Region); err != nil {
		return err
	}
	n, err := PutFile(ctx, client, c.File, bucket, key, c.ContentType)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "uploaded %s (%d bytes) to %s\n", c.File, n, c.Destination); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// EnsureBucket creates the bucket unless it exists. Outside us-east-1, S3 wants the region
// as the bucket's location constraint.
func EnsureBucket(ctx context.Context, client *s3.Client, bucket, region string) error {
	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	var notFound *types.NotFound
	var noBucket *types.NoSuchBucket
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound), errors.As(err, &noBucket):
	default:
		return fmt.Errorf("check bucket %s: %w", bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err = client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) { // created meanwhile by another put: fine
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// PutFile uploads the file at path to bucket/key and returns its size.
func PutFile(ctx context.Context, client *s3.Client, path, bucket, key, contentType string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          f, // seekable: the SDK signs the payload and can retry
		ContentLength: aws.Int64(info.Size()),
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := client.PutObject(ctx, in); err != nil {
		return 0, fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	return info.Size(), nil
}
