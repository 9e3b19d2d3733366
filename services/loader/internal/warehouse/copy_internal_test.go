package warehouse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// pgxFactValues is a row as it was handed to pgx's CopyFrom before appendCopyRow: the
// reference the hand-written encoding is held to. With players the player's name and team
// follow, NULLs without.
func pgxFactValues(r *FactRow, players bool) []any {
	var name, team *string
	if players {
		name, team = &r.PlayerName, &r.PlayerTeam
	}
	return []any{
		r.PlayerID, r.GameID, pgtype.Date{Time: r.GameDate, Valid: true}, r.GameNumber, r.Season, r.Opponent, r.Home,
		r.PlateAppearances, r.AtBats, r.Runs, r.Hits, r.Singles, r.Doubles, r.Triples, r.HomeRuns, r.RBI,
		r.BaseOnBalls, r.IntentionalWalks, r.StrikeOuts, r.HitByPitch, r.SacBunts, r.SacFlies,
		r.StolenBases, r.CaughtStealing, r.GroundIntoDoublePlay,
		r.TotalBases, r.ExtraBaseHits, r.TimesOnBase,
		r.EventID, r.Version, r.SourceTime, r.AcceptedAt,
		r.SourceStream, r.SourceShardID, r.SourceSequenceNumber, r.TraceID, r.Producer,
		name, team,
	}
}

// stagingOIDs are the types of the staging table's columns (stagingColumnsSQL), in
// postgresStagingColumns' order.
var stagingOIDs = []uint32{
	pgtype.Int8OID, pgtype.TextOID, pgtype.DateOID, pgtype.Int2OID, pgtype.Int2OID, pgtype.TextOID, pgtype.BoolOID,
	pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID,
	pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID,
	pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID, pgtype.Int4OID,
	pgtype.TextOID, pgtype.Int8OID, pgtype.TimestamptzOID, pgtype.TimestamptzOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID,
	pgtype.TextOID, pgtype.TextOID,
}

// pgxCopyRow encodes a row the way pgx's CopyFrom does (binary format, a plan per value).
func pgxCopyRow(t testing.TB, m *pgtype.Map, buf []byte, r *FactRow, players bool) []byte {
	t.Helper()
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(postgresStagingColumns)))
	for i, v := range pgxFactValues(r, players) {
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
		out, err := m.Encode(stagingOIDs[i], pgtype.BinaryFormatCode, v, buf)
		if err != nil {
			t.Fatalf("pgx encode %s: %v", postgresStagingColumns[i], err)
		}
		if out != nil {
			buf = out
			binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
		}
	}
	return buf
}

func copyTestRows() []FactRow {
	str := func(s string) *string { return &s }
	tm := func(t time.Time) *time.Time { return &t }
	la, _ := time.LoadLocation("America/Los_Angeles")
	full := FactRow{
		PlayerID: 660271, PlayerName: "Shohei Ohtani", PlayerTeam: "LAD",
		GameID: "LAN202403280", GameDate: time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC), GameNumber: 2, Season: 2024,
		Opponent: "STL", Home: true,
		PlateAppearances: 41, AtBats: 42, Runs: 43, Hits: 44, Singles: 45, Doubles: 46, Triples: 47, HomeRuns: 48, RBI: 49,
		BaseOnBalls: 50, IntentionalWalks: 51, StrikeOuts: 52, HitByPitch: 53, SacBunts: 54, SacFlies: 55,
		StolenBases: 56, CaughtStealing: 57, GroundIntoDoublePlay: 58, TotalBases: 59, ExtraBaseHits: 60, TimesOnBase: 70000,
		EventID: "0190f5a2-7b1c-7cde-8a3b-1234567890ab", Version: 1727654400000000,
		SourceTime:   tm(time.Date(2024, 4, 1, 23, 10, 5, 123456789, time.UTC)),
		AcceptedAt:   tm(time.Date(2024, 4, 1, 16, 10, 6, 654321000, la)),
		SourceStream: str("boxscore-events"), SourceShardID: str("shardId-000000000001"),
		SourceSequenceNumber: str("49590338271490256608559692538361571095921575989136588898"),
		TraceID:              str("4bf92f3577b34da6a3ce929d0e0e4736"), Producer: str("scorer"),
	}
	// Before 2000 (negative days and microseconds, truncated toward zero), a date that is not
	// midnight UTC, empty and non-ASCII text, NULLs, extremes.
	old := full
	old.PlayerID, old.GameID, old.Opponent, old.Home = 1, "", "Åland ⚾", false
	old.GameDate = time.Date(1871, 5, 4, 22, 30, 0, 0, la)
	old.GameNumber, old.Season, old.Version = 0, 1871, -1
	old.SourceTime = tm(time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC))
	old.AcceptedAt, old.SourceStream, old.SourceShardID, old.SourceSequenceNumber, old.TraceID, old.Producer = nil, nil, nil, nil, nil, nil
	old.Runs, old.Hits = 0, -2147483648
	return []FactRow{full, old}
}

func TestAppendCopyRowEncodesAsPgxDoes(t *testing.T) {
	t.Parallel()
	m := pgtype.NewMap()
	for i, r := range copyTestRows() {
		for _, players := range []bool{true, false} {
			got := appendCopyRow(nil, &r, players)
			want := pgxCopyRow(t, m, nil, &r, players)
			if !bytes.Equal(got, want) {
				t.Errorf("row %d, players %v: appendCopyRow = %x\npgx encodes      %x", i, players, got, want)
			}
		}
	}
	if len(postgresStagingColumns) != len(stagingOIDs) {
		t.Fatalf("%d columns, %d types", len(postgresStagingColumns), len(stagingOIDs))
	}
}

// BenchmarkCopyEncode500 encodes the COPY data of a batch of 500 rows: as pgx's CopyFrom did
// (a []any per row, a plan looked up per value), and as appendCopyData does.
func BenchmarkCopyEncode500(b *testing.B) {
	const n = 500
	base := copyTestRows()[0]
	rows := make([]FactRow, n)
	for i := range rows {
		rows[i] = base
		rows[i].PlayerID = int64(i + 1)
		rows[i].GameID = fmt.Sprintf("g%d", i)
	}
	b.Run("pgx-plan-per-value", func(b *testing.B) {
		m := pgtype.NewMap()
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = append(buf[:0], copyHeader...)
			for i := range rows {
				buf = pgxCopyRow(b, m, buf, &rows[i], true)
			}
			buf = append(buf, copyTrailer...)
		}
	})
	b.Run("binary-rows", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf := getCopyBuffer()
			*buf = appendCopyData(*buf, rows, true)
			putCopyBuffer(buf)
		}
	})
}
