// Package streamtest reads a whole test stream back: raw (Read), for tests that look at
// shards and sequence numbers, or decoded (ReadAll), for tests that look at the events.
package streamtest

import (
	"context"
	"fmt"
	"math/big"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Shard is one shard of a stream, open or closed, with every record it holds.
type Shard struct {
	types.Shard
	Records []types.Record
}

// ID is the shard's id.
func (s Shard) ID() string { return aws.ToString(s.ShardId) }

// Open reports whether the shard is open (it has no ending sequence number).
func (s Shard) Open() bool {
	return s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
}

// Contents is a whole stream as read back.
type Contents []Shard

// Ends maps every shard holding records to the sequence number of its last record.
func (c Contents) Ends() map[string]string {
	ends := map[string]string{}
	for _, s := range c {
		if n := len(s.Records); n > 0 {
			ends[s.ID()] = aws.ToString(s.Records[n-1].SequenceNumber)
		}
	}
	return ends
}

// Count is the number of records in the stream.
func (c Contents) Count() int {
	n := 0
	for _, s := range c {
		n += len(s.Records)
	}
	return n
}

// Shards lists every shard of the stream, open and closed, in ListShards order.
func Shards(ctx context.Context, client *kinesis.Client, streamName string) ([]types.Shard, error) {
	var out []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(streamName)}
	for {
		page, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", streamName, err)
		}
		out = append(out, page.Shards...)
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// Read returns every shard of the stream with every record it holds, from its start, in
// sequence order.
func Read(ctx context.Context, client *kinesis.Client, streamName string) (Contents, error) {
	shards, err := Shards(ctx, client, streamName)
	if err != nil {
		return nil, err
	}
	out := make(Contents, 0, len(shards))
	for _, shard := range shards {
		s := Shard{Shard: shard}
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(streamName),
			ShardId:           shard.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return nil, fmt.Errorf("shard iterator of %s/%s: %w", streamName, s.ID(), err)
		}
		// An open shard always has a next iterator: stop at the tip, an empty read that is
		// not behind. A closed shard's iterator ends.
		for iterator := it.ShardIterator; iterator != nil; {
			page, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, fmt.Errorf("get records of %s/%s: %w", streamName, s.ID(), err)
			}
			s.Records = append(s.Records, page.Records...)
			if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
				break
			}
			iterator = page.NextShardIterator
		}
		out = append(out, s)
	}
	return out, nil
}

// ShardOf returns the id of the open shard whose hash key range holds partitionKey, as
// Kinesis places a record: by the MD5 of the key read as a 128-bit unsigned integer.
func ShardOf(shards []types.Shard, partitionKey string) (string, error) {
	h := HashKey(partitionKey)
	for _, s := range shards {
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		lo, ok1 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
		hi, ok2 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
		if !ok1 || !ok2 {
			return "", fmt.Errorf("shard %s: hash key range %v", aws.ToString(s.ShardId), s.HashKeyRange)
		}
		if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
			return aws.ToString(s.ShardId), nil
		}
	}
	return "", fmt.Errorf("no open shard holds the hash key of %q", partitionKey)
}

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
	contents, err := Read(t.Context(), client, streamName)
	if err != nil {
		t.Fatal(err)
	}
	var records []Record
	for _, shard := range contents {
		for _, r := range shard.Records {
			env, ev, err := statevent.DecodeEnvelope(r.Data)
			if err != nil {
				t.Fatalf("record %s of %s: %v", aws.ToString(r.SequenceNumber), shard.ID(), err)
			}
			records = append(records, Record{
				ShardID:        shard.ID(),
				SequenceNumber: aws.ToString(r.SequenceNumber),
				PartitionKey:   aws.ToString(r.PartitionKey),
				Envelope:       env,
				Event:          ev,
			})
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
