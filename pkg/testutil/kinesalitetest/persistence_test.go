package kinesalitetest

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The local stack keeps kinesalite's data on disk (--path) so that make down
// and make up do not lose records: check that a record survives a restart.
func TestRecordsSurviveARestartWithADataDir(t *testing.T) {
	dataDir := t.TempDir()
	const stream = "persisted"
	body := []byte("batting line 1")

	first := Launch(t, Options{DataDir: dataDir})
	client := first.Client(t)
	if err := createStream(t.Context(), client, stream, 2); err != nil {
		t.Fatal(err)
	}
	put, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{
		StreamName:   aws.String(stream),
		PartitionKey: aws.String("game-7"),
		Data:         body,
	})
	if err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	first.Stop(t)

	second := Launch(t, Options{DataDir: dataDir})
	if second.Endpoint == first.Endpoint {
		t.Logf("restarted on the same port %s (possible, not required)", second.Endpoint)
	}
	client = second.Client(t)
	summary, err := client.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("DescribeStreamSummary after restart: %v", err)
	}
	if got := summary.StreamDescriptionSummary.StreamStatus; got != types.StreamStatusActive {
		t.Errorf("status after restart = %s, want ACTIVE", got)
	}
	if got := aws.ToInt32(summary.StreamDescriptionSummary.OpenShardCount); got != 2 {
		t.Errorf("open shards after restart = %d, want 2", got)
	}

	iterator, err := client.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{
		StreamName:             aws.String(stream),
		ShardId:                put.ShardId,
		ShardIteratorType:      types.ShardIteratorTypeAtSequenceNumber,
		StartingSequenceNumber: put.SequenceNumber,
	})
	if err != nil {
		t.Fatalf("GetShardIterator after restart: %v", err)
	}
	got, err := client.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: iterator.ShardIterator})
	if err != nil {
		t.Fatalf("GetRecords after restart: %v", err)
	}
	if len(got.Records) != 1 || !bytes.Equal(got.Records[0].Data, body) {
		t.Fatalf("records after restart = %+v, want one with data %q", got.Records, body)
	}
}

// Without a data dir nothing is kept: the in-memory mode tests rely on to
// start clean.
func TestInMemoryServerStartsEmpty(t *testing.T) {
	first := Launch(t, Options{})
	if err := createStream(t.Context(), first.Client(t), "ephemeral", 1); err != nil {
		t.Fatal(err)
	}
	first.Stop(t)

	second := Launch(t, Options{})
	out, err := second.Client(t).ListStreams(t.Context(), &kinesis.ListStreamsInput{})
	if err != nil {
		t.Fatalf("ListStreams: %v", err)
	}
	if len(out.StreamNames) != 0 {
		t.Errorf("a fresh in-memory server lists streams %v, want none", out.StreamNames)
	}
}
