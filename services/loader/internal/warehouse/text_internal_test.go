package warehouse

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStorableText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1000) // 2,000 bytes: a cut in the middle would split a rune
	tests := []struct {
		name, in    string
		max         int
		want        string
		wantChanged bool
	}{
		{"clean text is kept", "evt-1", 64, "evt-1", false},
		{"empty", "", 64, "", false},
		{"NUL replaced", "a\x00b\x00", 64, "a\uFFFDb\uFFFD", true},
		{"invalid UTF-8 replaced", "a\xffb\xc3", 64, "a\uFFFDb\uFFFD", true},
		{"exactly at the bound", strings.Repeat("x", 64), 64, strings.Repeat("x", 64), false},
	}
	for _, tt := range tests {
		got, changed := storableText(tt.in, tt.max)
		if got != tt.want || changed != tt.wantChanged {
			t.Errorf("%s: storableText(%q, %d) = %q, %t; want %q, %t", tt.name, tt.in, tt.max, got, changed, tt.want, tt.wantChanged)
		}
	}

	got, changed := storableText(long+"\x00", 257)
	if !changed || len(got) > 257 || !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
		t.Fatalf("truncated = %q (%d bytes, changed %t): want valid UTF-8 without NUL, at most 257 bytes", got, len(got), changed)
	}
	if !strings.HasPrefix(got, "éé") || !strings.HasSuffix(got, "…[truncated from 2001 bytes]") {
		t.Errorf("truncated = %q, want the start of the value and the mark with the original length", got)
	}
}
