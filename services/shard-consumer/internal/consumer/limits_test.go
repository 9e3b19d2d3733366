package consumer

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestNextReadAtKeepsWithinBothPerShardLimits(t *testing.T) {
	start := time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC)
	poll := 200 * time.Millisecond
	if got := nextReadAt(start, poll, nil); got.Sub(start) != poll {
		t.Fatalf("empty read: next call after %s, want the poll interval %s", got.Sub(start), poll)
	}
	small := []types.Record{{Data: make([]byte, 1000), PartitionKey: aws.String("660271")}}
	if got := nextReadAt(start, poll, small); got.Sub(start) != poll {
		t.Fatalf("small read: next call after %s, want %s", got.Sub(start), poll)
	}
	// 4 MiB read: two seconds' worth of the 2 MiB/s limit.
	big := []types.Record{{Data: make([]byte, 4<<20)}}
	if got := nextReadAt(start, poll, big); got.Sub(start) != 2*time.Second {
		t.Fatalf("4 MiB read: next call after %s, want 2s", got.Sub(start))
	}
}
