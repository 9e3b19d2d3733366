package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/stream"
)

func TestTrimmedPast(t *testing.T) {
	t.Parallel()
	const a = "49590338271490256608559692538361571095921575989136588898"
	const b = "49590338271490256608559692540925702759324208523137515618"
	for _, tc := range []struct {
		checkpoint, oldest string
		want               bool
	}{
		{"", b, false},      // nothing committed: nothing to lose
		{a, "", false},      // empty shard: tells nothing
		{a, a, false},       // the checkpoint's record is still the oldest
		{b, a, false},       // older records are still there
		{a, b, true},        // the checkpoint's record was trimmed
		{"99", "100", true}, // by value, not by text: "100" < "99" as text
		{"100", "99", false},
		{"not-a-number", a, true}, // garbage orders before every number
	} {
		if got := trimmedPast(tc.checkpoint, tc.oldest); got != tc.want {
			t.Errorf("trimmedPast(%q, %q) = %v, want %v", tc.checkpoint, tc.oldest, got, tc.want)
		}
	}
}

func TestIdentityOf(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 4, 0, 0, 500, time.FixedZone("x", 3600))
	if got, want := identityOf(&types.StreamDescriptionSummary{StreamCreationTimestamp: &created}), "created:2026-12-01T03:00:00.0000005Z"; got != want {
		t.Errorf("identity without ARN = %q, want %q", got, want)
	}
	arn := "arn:aws:kinesis:us-east-1:123456789012:stream/boxscore"
	if got, want := identityOf(&types.StreamDescriptionSummary{StreamARN: aws.String(arn), StreamCreationTimestamp: &created}),
		arn+"@created:2026-12-01T03:00:00.0000005Z"; got != want {
		t.Errorf("identity with ARN = %q, want %q", got, want)
	}
	if got := identityOf(&types.StreamDescriptionSummary{StreamARN: aws.String(arn)}); got != "" {
		t.Errorf("identity without a creation time = %q, want empty (the ARN survives a recreation)", got)
	}
}

// fakeShard is one shard of a stream API that reads like Kinesis or like kinesalite, for
// checkTrimHorizon. Sequence numbers are small decimal numbers.
type fakeShard struct {
	stream.API // only the calls below are made, from one goroutine

	records []string        // what the shard holds, in order
	expired map[string]bool // held but no longer served (kinesalite's lazy retention)
	// lazy reads like kinesalite: a page takes Limit records, then drops the expired
	// ones; MillisBehindLatest is always 0.
	lazy bool
	// emptyPages is how many empty pages (MillisBehindLatest > 0) Kinesis answers at
	// TRIM_HORIZON before the first record.
	emptyPages int
	// refuse answers InvalidArgumentException to AT_/AFTER_SEQUENCE_NUMBER (a sequence
	// number of another stream).
	refuse bool
}

func (f *fakeShard) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	pos, empty := 0, 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeTrimHorizon:
		empty = f.emptyPages
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		if f.refuse {
			return nil, &types.InvalidArgumentException{Message: aws.String("it did not come from this stream")}
		}
		at := aws.ToString(in.StartingSequenceNumber)
		for pos < len(f.records) && compareSequenceNumbers(f.records[pos], at) < 0 {
			pos++
		}
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber && pos < len(f.records) && f.records[pos] == at {
			pos++
		}
	default:
		return nil, fmt.Errorf("unexpected iterator type %s", in.ShardIteratorType)
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%d/%d", pos, empty))}, nil
}

func (f *fakeShard) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	var pos, empty int
	if _, err := fmt.Sscanf(aws.ToString(in.ShardIterator), "%d/%d", &pos, &empty); err != nil {
		return nil, err
	}
	if empty > 0 {
		return &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(60000),
			NextShardIterator: aws.String(fmt.Sprintf("%d/%d", pos, empty-1))}, nil
	}
	end := min(pos+int(aws.ToInt32(in.Limit)), len(f.records))
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0), NextShardIterator: aws.String(fmt.Sprintf("%d/0", end))}
	for _, seq := range f.records[pos:end] {
		if !f.expired[seq] {
			out.Records = append(out.Records, types.Record{SequenceNumber: aws.String(seq)})
		}
	}
	if !f.lazy && end < len(f.records) {
		out.MillisBehindLatest = aws.Int64(1000)
	}
	return out, nil
}

func gapReader(t *testing.T, f *fakeShard, committed string) *shardReader {
	t.Helper()
	c, err := New(Config{Stream: "s", PollInterval: 200 * time.Millisecond, Retry: RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond}},
		f, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &shardReader{c: c, shard: types.Shard{ShardId: aws.String("shardId-000000000000")}, log: c.log, committed: committed, lastRead: committed}
	// Only the calls count here, not the pace.
	c.cfg.PollInterval = 0
	return r
}

// checkTrimHorizon against the ways a stream shows (or does not show) that the
// checkpoint's record expired: Kinesis trims in the background and may answer empty pages
// before the oldest record; kinesalite keeps expired records and drops them from each page.
func TestCheckTrimHorizon(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		shard      fakeShard
		committed  string
		wantGap    bool
		wantOldest string // in the gap's detail
	}{
		{name: "nothing committed", shard: fakeShard{records: []string{"5"}}, committed: ""},
		{name: "kinesis: checkpoint held", shard: fakeShard{records: []string{"10", "20", "30"}}, committed: "20"},
		{name: "kinesis: older records trimmed, checkpoint held", shard: fakeShard{records: []string{"20", "30"}}, committed: "20"},
		{name: "kinesis: checkpoint trimmed", shard: fakeShard{records: []string{"30", "40"}}, committed: "20", wantGap: true, wantOldest: "30"},
		{name: "kinesis: empty pages before the oldest record", shard: fakeShard{records: []string{"30", "40"}, emptyPages: 3},
			committed: "20", wantGap: true, wantOldest: "30"},
		{name: "kinesis: empty pages, checkpoint held", shard: fakeShard{records: []string{"20", "30"}, emptyPages: 3}, committed: "20"},
		{name: "kinesis: everything trimmed", shard: fakeShard{}, committed: "20", wantGap: true},
		{name: "kinesalite: checkpoint expired, later records live", shard: fakeShard{lazy: true,
			records: []string{"10", "20", "25", "30"}, expired: map[string]bool{"10": true, "20": true, "25": true}},
			committed: "20", wantGap: true},
		{name: "kinesalite: every record expired", shard: fakeShard{lazy: true,
			records: []string{"10", "20"}, expired: map[string]bool{"10": true, "20": true}}, committed: "20", wantGap: true},
		{name: "kinesalite: older records expired, checkpoint live", shard: fakeShard{lazy: true,
			records: []string{"10", "20", "30"}, expired: map[string]bool{"10": true}}, committed: "20"},
		{name: "kinesalite: expired records deleted", shard: fakeShard{lazy: true, records: []string{"30"}},
			committed: "20", wantGap: true, wantOldest: "30"},
		{name: "sequence number of another stream, empty shard", shard: fakeShard{refuse: true}, committed: "20"},
		{name: "sequence number of another stream", shard: fakeShard{refuse: true, records: []string{"90"}},
			committed: "20", wantGap: true, wantOldest: "90"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := gapReader(t, &tc.shard, tc.committed)
			if err := r.checkTrimHorizon(context.Background()); err != nil {
				t.Fatalf("checkTrimHorizon: %v", err)
			}
			if got := r.gap != nil; got != tc.wantGap {
				t.Fatalf("gap = %v, want a gap: %v", r.gap, tc.wantGap)
			}
			if !tc.wantGap {
				if r.lastRead != tc.committed {
					t.Errorf("reads on after %q, want after the checkpoint %q", r.lastRead, tc.committed)
				}
				return
			}
			if r.gap.GetReason() != gapTrimHorizon || r.gap.GetAfterSequenceNumber() != tc.committed {
				t.Errorf("gap = %v, want trim_horizon after %s", r.gap, tc.committed)
			}
			if tc.wantOldest != "" && !strings.Contains(r.gap.GetDetail(), " "+tc.wantOldest) {
				t.Errorf("gap detail %q does not name the oldest record %s", r.gap.GetDetail(), tc.wantOldest)
			}
			if r.lastRead != "" {
				t.Errorf("reads on after %q, want from TRIM_HORIZON", r.lastRead)
			}
		})
	}
}
