package consumer

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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
