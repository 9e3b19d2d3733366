// Package streamtest reads a whole test stream back, for the gateway's tests.
package streamtest

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Record is one record of the stream, decoded.
type Record struct {
	ShardID        string
	SequenceNumber string
	PartitionKey   string
	Envelope       *streamv1.Envelope
	Event          *statsv1.StatEvent
}

// ReadAll returns every record of every shard of the stream, shard by shard in sequence
// order. It fails the test on any error, including a record that does not decode.
func ReadAll(t testing.TB, client *kinesis.Client, streamName string) []Record {
	t.Helper()
	ctx := t.Context()
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(streamName)})
	if err != nil {
		t.Fatalf("list shards of %s: %v", streamName, err)
	}
	var records []Record
	for _, shard := range shards.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(streamName),
			ShardId:           shard.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("shard iterator of %s/%s: %v", streamName, aws.ToString(shard.ShardId), err)
		}
		iterator := it.ShardIterator
		for iterator != nil {
			out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator})
			if err != nil {
				t.Fatalf("get records of %s/%s: %v", streamName, aws.ToString(shard.ShardId), err)
			}
			for _, r := range out.Records {
				env, ev, err := statevent.DecodeEnvelope(r.Data)
				if err != nil {
					t.Fatalf("record %s of %s: %v", aws.ToString(r.SequenceNumber), aws.ToString(shard.ShardId), err)
				}
				records = append(records, Record{
					ShardID:        aws.ToString(shard.ShardId),
					SequenceNumber: aws.ToString(r.SequenceNumber),
					PartitionKey:   aws.ToString(r.PartitionKey),
					Envelope:       env,
					Event:          ev,
				})
			}
			// An open shard always has a next iterator: stop at the first empty read, as
			// everything the test wrote is there by now.
			if len(out.Records) == 0 {
				break
			}
			iterator = out.NextShardIterator
		}
	}
	return records
}

// ByEventID indexes records by event id and fails the test if an id occurs twice.
func ByEventID(t testing.TB, records []Record) map[string]Record {
	t.Helper()
	byID := make(map[string]Record, len(records))
	for _, r := range records {
		if prev, dup := byID[r.Envelope.GetEventId()]; dup {
			t.Errorf("event %s is in the stream twice: %s/%s and %s/%s", r.Envelope.GetEventId(),
				prev.ShardID, prev.SequenceNumber, r.ShardID, r.SequenceNumber)
		}
		byID[r.Envelope.GetEventId()] = r
	}
	return byID
}
