package kinesalitetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// readAll reads a shard from TRIM_HORIZON to its tip and returns the records' data and
// arrival times.
func readAll(t *testing.T, client *kinesis.Client, stream string) (data []string, arrived []time.Time) {
	t.Helper()
	it, err := client.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Records {
		data = append(data, string(r.Data))
		arrived = append(arrived, aws.ToTime(r.ApproximateArrivalTimestamp))
	}
	return data, arrived
}

// Moving the clock past the retention (24 hours) expires the records put before; records
// put after carry the later time, and a restart keeps it.
func TestAdvanceClockExpiresRecords(t *testing.T) {
	p := Launch(t, Options{DataDir: t.TempDir(), ClockControl: true})
	client := p.Client(t)
	const stream = "clocked"
	if err := createStream(t.Context(), client, stream, 1); err != nil {
		t.Fatal(err)
	}
	put := func(body string) {
		t.Helper()
		if _, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String(stream),
			PartitionKey: aws.String("k"), Data: []byte(body)}); err != nil {
			t.Fatalf("PutRecord %q: %v", body, err)
		}
	}
	put("old")
	if got, _ := readAll(t, client, stream); strings.Join(got, ",") != "old" {
		t.Fatalf("before the clock moves: records %q, want old", got)
	}

	p.AdvanceClock(t, 25*time.Hour)
	if got := p.ClockOffset(); got != 25*time.Hour {
		t.Errorf("ClockOffset = %s, want 25h", got)
	}
	put("new")
	got, arrived := readAll(t, client, stream)
	if strings.Join(got, ",") != "new" {
		t.Fatalf("25h later: records %q, want only new (old expired)", got)
	}
	if ahead := time.Until(arrived[0]); ahead < 24*time.Hour || ahead > 26*time.Hour {
		t.Errorf("the new record arrived %s from now, want about 25h ahead", ahead)
	}

	// A restart keeps the clock where it was moved: time does not go back.
	p.Restart(t)
	put("after restart")
	got, arrived = readAll(t, client, stream)
	if strings.Join(got, ",") != "new,after restart" {
		t.Fatalf("after a restart: records %q, want new and after restart", got)
	}
	if ahead := time.Until(arrived[1]); ahead < 24*time.Hour {
		t.Errorf("after a restart a record arrived %s from now, want about 25h ahead", ahead)
	}
	p.AdvanceClock(t, time.Hour)
	if got := p.ClockOffset(); got != 26*time.Hour {
		t.Errorf("ClockOffset after a second move = %s, want 26h", got)
	}
}

func TestAdvanceClockNeedsClockControl(t *testing.T) {
	p := Launch(t, Options{})
	if err := p.advanceClock(time.Hour); err == nil || !strings.Contains(err.Error(), "ClockControl") {
		t.Errorf("advanceClock without ClockControl: %v, want an error naming ClockControl", err)
	}
	c := Launch(t, Options{ClockControl: true})
	if err := c.advanceClock(-time.Second); err == nil {
		t.Error("advanceClock(-1s): no error, want one (the clock only moves forward)")
	}
	c.Stop(t)
	if err := c.advanceClock(time.Second); err == nil {
		t.Error("advanceClock on a stopped process: no error")
	}
}
