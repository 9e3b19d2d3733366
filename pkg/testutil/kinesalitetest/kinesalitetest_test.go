package kinesalitetest_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
)

func TestStreamRoundTrip(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 2)
	client := srv.Client(t)
	ctx := t.Context()

	summary, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("DescribeStreamSummary: %v", err)
	}
	if got := summary.StreamDescriptionSummary.StreamStatus; got != types.StreamStatusActive {
		t.Errorf("status after CreateStream = %s, want ACTIVE", got)
	}

	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	if len(shards.Shards) != 2 {
		t.Fatalf("ListShards found %d shards, want 2", len(shards.Shards))
	}

	body := []byte(`{"player":"ruth","hits":3}`)
	put, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName:   aws.String(name),
		PartitionKey: aws.String("game-1"),
		Data:         body,
	})
	if err != nil {
		t.Fatalf("PutRecord: %v", err)
	}

	iterator, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String(name),
		ShardId:           put.ShardId,
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator.ShardIterator})
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	if len(got.Records) != 1 {
		t.Fatalf("GetRecords returned %d records, want 1", len(got.Records))
	}
	record := got.Records[0]
	if !bytes.Equal(record.Data, body) {
		t.Errorf("record data = %q, want %q", record.Data, body)
	}
	if aws.ToString(record.PartitionKey) != "game-1" {
		t.Errorf("partition key = %q, want game-1", aws.ToString(record.PartitionKey))
	}
	if aws.ToString(record.SequenceNumber) != aws.ToString(put.SequenceNumber) {
		t.Errorf("sequence number = %s, want %s from PutRecord", aws.ToString(record.SequenceNumber), aws.ToString(put.SequenceNumber))
	}
}

func TestStartSharesOneServerPerTestBinary(t *testing.T) {
	first := kinesalitetest.Start(t)
	second := kinesalitetest.Start(t)
	if first.Endpoint != second.Endpoint {
		t.Errorf("Start returned %s, then %s: want one server per test binary", first.Endpoint, second.Endpoint)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(first.Endpoint) {
		t.Errorf("endpoint %q is not an http URL on 127.0.0.1", first.Endpoint)
	}
}

func TestStartUsesTheEndpointFromTheEnvironment(t *testing.T) {
	t.Setenv(kinesalitetest.EndpointEnv, "http://127.0.0.1:4567/")
	if got := kinesalitetest.Start(t).Endpoint; got != "http://127.0.0.1:4567" {
		t.Errorf("Endpoint = %q, want http://127.0.0.1:4567", got)
	}
}

func TestCreateStreamDeletesTheStreamAfterTheTest(t *testing.T) {
	srv := kinesalitetest.Start(t)
	var name string
	t.Run("create", func(t *testing.T) {
		name = kinesalitetest.UniqueName(t)
		srv.CreateStream(t, name, 1)
	})
	out, err := srv.Client(t).DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		// Deleted.
	case err != nil:
		t.Fatalf("DescribeStreamSummary after the test: %v", err)
	case out.StreamDescriptionSummary.StreamStatus != types.StreamStatusDeleting:
		// Deletion takes a moment (DELETING); it must at least have begun.
		t.Errorf("stream %s is %s after its test, want deleted or DELETING", name, out.StreamDescriptionSummary.StreamStatus)
	}
}

func TestUniqueNameIsValidAndUnique(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	seen := map[string]bool{}
	for _, sub := range []string{
		"plain",
		"spaces and/slashes: (weird) #chars ✓",
		strings.Repeat("long", 60),
	} {
		t.Run(sub, func(t *testing.T) {
			for range 2 {
				name := kinesalitetest.UniqueName(t)
				if !valid.MatchString(name) {
					t.Errorf("UniqueName = %q (%d chars): not a valid stream name", name, len(name))
				}
				if seen[name] {
					t.Errorf("UniqueName returned %q twice", name)
				}
				seen[name] = true
			}
		})
	}
}
