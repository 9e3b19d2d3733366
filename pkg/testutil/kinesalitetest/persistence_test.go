package kinesalitetest

import (
	"bytes"
	"strconv"
	"strings"
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

// A restarted process listens on the port it had, so the endpoint that
// services were given stays valid; streams and records survive a kill too.
func TestRestartKeepsThePortAndTheRecords(t *testing.T) {
	p := Launch(t, Options{DataDir: t.TempDir()})
	endpoint := p.Endpoint
	client := p.Client(t)
	if err := createStream(t.Context(), client, "kept", 1); err != nil {
		t.Fatal(err)
	}
	put := func(body string) {
		t.Helper()
		if _, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String("kept"),
			PartitionKey: aws.String("k"), Data: []byte(body)}); err != nil {
			t.Fatalf("PutRecord %q: %v", body, err)
		}
	}
	put("before restart")
	p.Restart(t)
	put("before kill")
	p.Kill(t)
	if _, err := client.ListStreams(t.Context(), &kinesis.ListStreamsInput{}); err == nil {
		t.Fatal("a killed kinesalite still answers")
	}
	p.Start(t)
	if p.Endpoint != endpoint {
		t.Fatalf("endpoint after restarts = %s, want %s", p.Endpoint, endpoint)
	}

	shards, err := client.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String("kept")})
	if err != nil {
		t.Fatalf("ListShards after restarts on the old endpoint: %v", err)
	}
	it, err := client.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{StreamName: aws.String("kept"),
		ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.GetRecords(t.Context(), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, r := range got.Records {
		bodies = append(bodies, string(r.Data))
	}
	if len(bodies) != 2 || bodies[0] != "before restart" || bodies[1] != "before kill" {
		t.Fatalf("records after a restart and a kill = %q, want both", bodies)
	}
}

// Options.Port pins the port from the first start.
func TestLaunchOnAGivenPort(t *testing.T) {
	first := Launch(t, Options{})
	first.Stop(t)
	port := first.Endpoint[strings.LastIndex(first.Endpoint, ":")+1:]
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	p := Launch(t, Options{Port: n})
	if p.Endpoint != first.Endpoint {
		t.Fatalf("endpoint = %s, want %s", p.Endpoint, first.Endpoint)
	}
}
