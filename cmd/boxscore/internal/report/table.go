package report

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

// tableColumns are the leaderboard's columns after Player, in order.
var tableColumns = []string{"G", "PA", "AB", "R", "H", "2B", "3B", "HR", "RBI", "BB", "SO", "SB", "AVG", "OBP", "SLG", "OPS"}

// columnGap separates the table's columns.
const columnGap = "  "

// WriteTable writes rows as an aligned plain-text table, best OPS first:
// player names left-aligned, numbers right-aligned, rates baseball-style
// (".312", "1.021"). rows itself is not reordered.
func WriteTable(w io.Writer, rows []PlayerSeason) error {
	sorted := slices.Clone(rows)
	seasonview.SortByOPS(sorted)
	return writeRows(w, sorted, false)
}

// WriteLeaderboard writes rows in their order, ranked (1, 2, ...; a tie on the sorted
// statistic shares its rank) by the statistic key (see sortKeys), with each player's
// team: the league leaderboard. Otherwise it looks as WriteTable's table.
func WriteLeaderboard(w io.Writer, rows []PlayerSeason, key string) error {
	stat, ok := sortKeys[key]
	if !ok {
		return fmt.Errorf("report: unknown statistic %q", key)
	}
	ranked := make([]rankedRow, len(rows))
	for i, r := range rows {
		rank := i + 1
		if i > 0 && stat.value(r) == stat.value(rows[i-1]) {
			rank = ranked[i-1].rank
		}
		ranked[i] = rankedRow{PlayerSeason: r, rank: rank}
	}
	return writeRanked(w, ranked, true)
}

type rankedRow struct {
	PlayerSeason
	rank int
}

func writeRows(w io.Writer, rows []PlayerSeason, withRank bool) error {
	ranked := make([]rankedRow, len(rows))
	for i, r := range rows {
		ranked[i] = rankedRow{PlayerSeason: r}
	}
	return writeRanked(w, ranked, withRank)
}

// writeRanked writes the table; with ranks (the league leaderboard), each line starts with
// the rank and the player's team follows the name.
func writeRanked(w io.Writer, rows []rankedRow, league bool) error {
	nameWidth := len("Player")
	for _, r := range rows {
		nameWidth = max(nameWidth, len([]rune(r.Name)))
	}

	// tabwriter right-aligns every cell with AlignRight, names included. So the
	// name cell is padded here to one width (which left-aligns the names) and
	// the gap between columns is part of the next cell, not tabwriter padding:
	// no line starts or ends with spaces.
	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	writeRow := func(rank, name, team string, cells []string) {
		var line strings.Builder
		if league {
			line.WriteString(rank)
			line.WriteString("\t")
			line.WriteString(columnGap)
		}
		line.WriteString(name)
		line.WriteString(strings.Repeat(" ", nameWidth-len([]rune(name))))
		if league {
			line.WriteString(columnGap)
			line.WriteString(fmt.Sprintf("%-4s", team))
		}
		line.WriteByte('\t')
		for _, cell := range cells {
			line.WriteString(columnGap)
			line.WriteString(cell)
			line.WriteByte('\t')
		}
		line.WriteByte('\n')
		// tabwriter buffers until Flush, which reports any write error.
		_, _ = io.WriteString(tw, line.String())
	}

	writeRow("#", "Player", "Team", tableColumns)
	for _, r := range rows {
		writeRow(strconv.Itoa(r.rank), r.Name, r.Team, []string{
			strconv.Itoa(r.Games), strconv.Itoa(r.PlateAppearances), strconv.Itoa(r.AtBats),
			strconv.Itoa(r.Runs), strconv.Itoa(r.Hits), strconv.Itoa(r.Doubles),
			strconv.Itoa(r.Triples), strconv.Itoa(r.HomeRuns), strconv.Itoa(r.RBI),
			strconv.Itoa(r.BaseOnBalls), strconv.Itoa(r.StrikeOuts), strconv.Itoa(r.StolenBases),
			r.AVG.String(), r.OBP.String(), r.SLG.String(), r.OPS.String(),
		})
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: write table: %w", err)
	}
	return nil
}
