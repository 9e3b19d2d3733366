package ingestclient

import (
	"testing"
	"time"
)

func TestRetryAfterParsesSecondsAndHTTPDates(t *testing.T) {
	now := time.Date(2024, 4, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-4", 0},
		{"Mon, 01 Apr 2024 12:00:05 GMT", 5 * time.Second},
		{"Mon, 01 Apr 2024 11:59:00 GMT", 0}, // in the past: retry now
		{"soon", 0},
	} {
		if got := retryAfter(tc.value, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}
