package statevent

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Text rules. Every text field of an event (event id, player name, team, game id, opponent,
// source, retraction reason) is:
//
//   - trimmed of surrounding white space and put in Unicode Normalization Form C by
//     Normalize, so "LAN202409290 " and "LAN202409290", or "José" written with a combining
//     accent and "José" precomposed, are one value and never a second game or player;
//   - refused by ValidateShape when it is not valid UTF-8 ("invalid_utf8") or holds a
//     control character, NUL included, or an invisible format character such as a
//     bidirectional override ("invalid_characters"): no name needs one, they make two
//     values look alike, and PostgreSQL text cannot hold NUL.
//
// The zero-width joiner and non-joiner (U+200D, U+200C) are letters' business in some
// scripts and stay allowed in names. The replacement character U+FFFD is refused too: text
// holding it already lost bytes somewhere upstream, and the producer must send it again.
//
// Codes follow formats (FormatGameID, FormatTeamCode) so that a producer's typo is refused
// at the door rather than stored as a new game or team.
const (
	// FormatGameID describes a game id: 1 to MaxGameIDLength ASCII letters, digits and
	// . _ : -, starting with a letter or digit. Retrosheet ids ("LAN202409290": home team,
	// date, game number) and MLB gamePk numbers ("745001") both fit; case is kept (ids are
	// case-sensitive), surrounding white space is trimmed.
	FormatGameID = "1-64 of A-Z a-z 0-9 . _ : -, starting with a letter or digit (e.g. LAN202409290, 745001)"
	// FormatTeamCode describes a team or opponent code: an upper-case letter then one to
	// three upper-case letters or digits (LAD, SD, CWS, and Retrosheet's 19th-century
	// codes such as BL1). Normalize upper-cases ASCII letters, so "lad" is LAD.
	FormatTeamCode = "2-4 of A-Z 0-9, starting with a letter (e.g. LAD, SD, CWS)"
	// MaxTeamCodeLength is the longest team code FormatTeamCode allows.
	MaxTeamCodeLength = 4
)

// normalizeText trims s and puts it in NFC. Invalid UTF-8 is left as it is, for
// ValidateShape to refuse: normalizing would silently repair bytes the producer must fix.
func normalizeText(s string) string {
	if isASCII(s) {
		// ASCII is valid UTF-8 and already in NFC: only the trim is left, and it does not
		// allocate. Most text (ids, codes, dates, most names) takes this path.
		return strings.TrimSpace(s)
	}
	if !utf8.ValidString(s) {
		return s
	}
	// Trimmed on both sides of NFC: composition can neither create nor join white space
	// at an edge, but a leading combining mark is only exposed once the space is gone.
	return strings.TrimSpace(norm.NFC.String(strings.TrimSpace(s)))
}

// normalizeCode is normalizeText with ASCII letters upper-cased: team codes are
// upper-case by format, and "lad" is the same team as "LAD". Upper-casing comes first, so
// the result is in NFC ("i" + U+0307 upper-cased composes to U+0130) and Normalize stays
// idempotent.
func normalizeCode(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	return normalizeText(strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s))
}

// textCharProblem returns the reason and detail of the first character of s that no text
// field may hold, or "" when there is none.
func textCharProblem(s, what string) (reason, detail string) {
	if isPrintableASCII(s) {
		// Valid UTF-8 without a control character: the common case, decided without
		// decoding runes or looking them up in the Unicode tables.
		return "", ""
	}
	if !utf8.ValidString(s) {
		return "invalid_utf8", what + " is not valid UTF-8"
	}
	for i, r := range s {
		if isForbiddenRune(r) {
			return "invalid_characters", fmt.Sprintf("%s holds the control or format character %U at byte %d", what, r, i)
		}
	}
	return "", ""
}

// isForbiddenRune reports a control character (Cc: NUL, C0, DEL, C1), an invisible format
// character (Cf: bidirectional controls, zero-width space, byte order mark...), except the
// joiners some scripts need, or the replacement character U+FFFD.
func isForbiddenRune(r rune) bool {
	if r < utf8.RuneSelf {
		// ASCII holds no format character (Cf); its control characters (Cc) are C0 and DEL.
		return r < 0x20 || r == 0x7f
	}
	if r == '\u200c' || r == '\u200d' {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// IsNormalizedText reports whether s is storable, normalized text: valid UTF-8, in NFC,
// without surrounding white space and without a character textCharProblem refuses. Every
// text field of an event that passed Normalize and ValidateShape is.
func IsNormalizedText(s string) bool {
	if reason, _ := textCharProblem(s, ""); reason != "" {
		return false
	}
	return norm.NFC.IsNormalString(s) && strings.TrimSpace(s) == s
}

// isGameID reports whether id follows FormatGameID (length is checked apart).
func isGameID(id string) bool {
	if id == "" || !isASCIIAlnum(id[0]) {
		return false
	}
	return isEventIDSafe(id)
}

// isTeamCode reports whether code follows FormatTeamCode.
func isTeamCode(code string) bool {
	if len(code) < 2 || len(code) > MaxTeamCodeLength || code[0] < 'A' || code[0] > 'Z' {
		return false
	}
	for i := 1; i < len(code); i++ {
		if c := code[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isASCII reports whether every byte of s is ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isPrintableASCII reports whether every byte of s is printable ASCII or white space other
// than a control character, that is in 0x20-0x7E: such text has nothing textCharProblem
// refuses.
func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
