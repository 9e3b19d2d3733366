package streamtest_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
)

// TestShardOfPlacesKeysAsKinesisDoes: for 40 partition keys over 4 shards, ShardOf names
// the shard kinesalite put each record in, and Read gives every record back there, in
// order.
func TestShardOfPlacesKeysAsKinesisDoes(t *testing.T) {
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 4)
	client := srv.Client(t)
	ctx := t.Context()
	shards, err := streamtest.Shards(ctx, client, name)
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string][]string{} // shard -> sequence numbers, in put order
	for i := range 40 {
		key := fmt.Sprint(100000 + i)
		want, err := streamtest.ShardOf(shards, key)
		if err != nil {
			t.Fatal(err)
		}
		out, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name),
			PartitionKey: aws.String(key), Data: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.ShardId); got != want {
			t.Errorf("key %s: kinesalite put it in %s, ShardOf says %s", key, got, want)
		}
		placed[aws.ToString(out.ShardId)] = append(placed[aws.ToString(out.ShardId)], aws.ToString(out.SequenceNumber))
	}
	if len(placed) != 4 {
		t.Fatalf("40 keys landed in %d of 4 shards", len(placed))
	}

	contents, err := streamtest.Read(ctx, client, name)
	if err != nil {
		t.Fatal(err)
	}
	if contents.Count() != 40 || len(contents) != 4 {
		t.Fatalf("read %d records in %d shards, want 40 in 4", contents.Count(), len(contents))
	}
	for _, s := range contents {
		if !s.Open() {
			t.Errorf("shard %s read as closed", s.ID())
		}
		want := placed[s.ID()]
		if len(s.Records) != len(want) {
			t.Fatalf("shard %s: %d records, put %d", s.ID(), len(s.Records), len(want))
		}
		for i, r := range s.Records {
			if aws.ToString(r.SequenceNumber) != want[i] {
				t.Errorf("shard %s record %d: sequence %s, put %s", s.ID(), i, aws.ToString(r.SequenceNumber), want[i])
			}
		}
		if contents.Ends()[s.ID()] != want[len(want)-1] {
			t.Errorf("shard %s ends at %s, last put %s", s.ID(), contents.Ends()[s.ID()], want[len(want)-1])
		}
	}
}
