package statevent

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The text and date rules have fast paths for ASCII text and well-formed dates. The
// reference functions below are the rules as they were written before those fast paths,
// kept here so that a fuzz target can prove the fast paths change no outcome.

func referenceNormalizeText(s string) string {
	if s == "" || !utf8.ValidString(s) {
		return s
	}
	return strings.TrimSpace(norm.NFC.String(strings.TrimSpace(s)))
}

func referenceNormalizeCode(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	return referenceNormalizeText(strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s))
}

func referenceIsForbiddenRune(r rune) bool {
	if r == '\u200c' || r == '\u200d' {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

func referenceTextCharProblem(s, what string) (reason, detail string) {
	if !utf8.ValidString(s) {
		return "invalid_utf8", what + " is not valid UTF-8"
	}
	for i, r := range s {
		if referenceIsForbiddenRune(r) {
			return "invalid_characters", fmt.Sprintf("%s holds the control or format character %U at byte %d", what, r, i)
		}
	}
	return "", ""
}

// checkFastPathsMatchReference fails t when a fast path gives another outcome than the
// reference rule for s.
func checkFastPathsMatchReference(t *testing.T, s string) {
	t.Helper()
	if got, want := normalizeText(s), referenceNormalizeText(s); got != want {
		t.Errorf("normalizeText(%q) = %q, reference %q", s, got, want)
	}
	if got, want := normalizeCode(s), referenceNormalizeCode(s); got != want {
		t.Errorf("normalizeCode(%q) = %q, reference %q", s, got, want)
	}
	gotReason, gotDetail := textCharProblem(s, "s")
	wantReason, wantDetail := referenceTextCharProblem(s, "s")
	if gotReason != wantReason || gotDetail != wantDetail {
		t.Errorf("textCharProblem(%q) = %q, %q, reference %q, %q", s, gotReason, gotDetail, wantReason, wantDetail)
	}
	for _, r := range s {
		if got, want := isForbiddenRune(r), referenceIsForbiddenRune(r); got != want {
			t.Errorf("isForbiddenRune(%U) = %v, reference %v", r, got, want)
		}
	}
	gotDate, gotErr := parseGameDate(s)
	wantDate, wantErr := time.Parse(gameDateLayout, s)
	if (gotErr == nil) != (wantErr == nil) || !gotDate.Equal(wantDate) || gotDate.Location() != wantDate.Location() {
		t.Errorf("parseGameDate(%q) = %v, %v; time.Parse gives %v, %v", s, gotDate, gotErr, wantDate, wantErr)
	}
}

var fastPathSeeds = []string{
	"", " ", "\t\n", "LAD", "lad ", " Freddie Freeman ", "José", "Jose\u0301", "\u0301a", "i\u0307",
	"\x00", "a\x1f", "a\x7f", "\u0085", "\u200b", "\u200c", "\u200d", "\ufeff", "\ufffd", "\xff", "a\xc3",
	"mlb-statsapi", "0190f5a2-7b1c-7cde-8a3b-1234567890ab", "\u00a0LAD\u00a0", "\u3000x\u3000",
	"2024-03-20", "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "2024-04-31", "2024-13-01",
	"2024-00-10", "2024-01-00", "0000-01-01", "9999-12-31", "+999-01-02", "-999-01-02", "2024-1-02",
	"2024-01-2 ", " 2024-01-02", "2024/01/02", "2024-01-32", "2024-12-31", "1871-01-01",
}

func TestFastPathsMatchReference(t *testing.T) {
	for _, s := range fastPathSeeds {
		checkFastPathsMatchReference(t, s)
	}
	for c := 0; c < 0x100; c++ {
		checkFastPathsMatchReference(t, string(rune(c)))
		checkFastPathsMatchReference(t, "a"+string([]byte{byte(c)})+"b")
	}
	// Every month and day number around the valid ones, in common, leap and century years.
	for _, year := range []int{0, 1600, 1871, 1900, 2000, 2023, 2024, 2100, 9999} {
		for month := 0; month <= 13; month++ {
			for day := 0; day <= 32; day++ {
				checkFastPathsMatchReference(t, fmt.Sprintf("%04d-%02d-%02d", year, month, day))
			}
		}
	}
}

// FuzzFastPathsMatchReference checks that the fast paths of the text and date rules give,
// on any string, the outcome of the rules they shortcut.
func FuzzFastPathsMatchReference(f *testing.F) {
	for _, s := range fastPathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkFastPathsMatchReference(t, s)
	})
}
