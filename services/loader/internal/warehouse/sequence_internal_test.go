package warehouse

import (
	"regexp"
	"strings"
	"testing"
)

// kinesisSequenceNumber is the rule as Kinesis documents it, the regexp isSequenceNumber
// replaced.
var kinesisSequenceNumber = regexp.MustCompile(`^(0|[1-9][0-9]{0,128})$`)

func TestIsSequenceNumberIsTheKinesisPattern(t *testing.T) {
	t.Parallel()
	cases := []string{
		"", "0", "00", "01", "1", "9", "10", "49590338271490256608559692538361571095921575989136588898",
		"-1", "+1", " 1", "1 ", "1a", "a1", "١", "1.0", "0x1", "\x00", "1\n",
		"1" + strings.Repeat("0", 128), "1" + strings.Repeat("0", 129), strings.Repeat("9", 129), strings.Repeat("9", 130),
		"0" + strings.Repeat("9", 128),
	}
	for _, s := range cases {
		if got, want := isSequenceNumber(s), kinesisSequenceNumber.MatchString(s); got != want {
			t.Errorf("isSequenceNumber(%q) = %v, the Kinesis pattern says %v", s, got, want)
		}
	}
}
