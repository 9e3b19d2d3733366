package limits_test

import (
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/limits"
)

func TestDeclaredLimitsHoldTogether(t *testing.T) {
	if err := limits.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckBatch(t *testing.T) {
	for _, tc := range []struct {
		name          string
		records, size int
		wantErr       string
	}{
		{"defaults", 500, 4 << 20, ""},
		{"largest", limits.BatchMaxRecords, limits.BatchMaxBytes, ""},
		{"no records", 0, 4 << 20, "records"},
		{"more than one GetRecords", limits.BatchMaxRecords + 1, 4 << 20, "records"},
		{"smaller than one record", 500, limits.KinesisRecordBytes - 1, "bytes"},
		{"over half a Transform message", 500, limits.BatchMaxBytes + 1, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := limits.CheckBatch(tc.records, tc.size)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckBatch(%d, %d): %v", tc.records, tc.size, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("CheckBatch(%d, %d) = %v, want an error about %s", tc.records, tc.size, err, tc.wantErr)
			}
		})
	}
}
