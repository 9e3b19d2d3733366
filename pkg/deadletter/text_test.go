package deadletter_test

import (
	"testing"
	"unicode/utf8"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
)

func TestStorableTextIsValidUTF8WithoutNUL(t *testing.T) {
	for in, want := range map[string]string{
		"evt-1":             "evt-1",
		"evt-\x00-1":        "evt-\uFFFD-1",
		"bad \xff\xfe utf8": "bad \uFFFD utf8",
		"é stays":           "é stays",
	} {
		got := deadletter.StorableText(in)
		if got != want || !utf8.ValidString(got) {
			t.Errorf("StorableText(%q) = %q, want %q", in, got, want)
		}
	}
}
