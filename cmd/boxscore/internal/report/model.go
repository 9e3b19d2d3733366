// Package report presents the warehouse's season model, as pkg/seasonview reads it: the
// league leaderboard (by OPS, AVG, HR, ...; rates for qualified batters only: 3.1 plate
// appearances per team game) as plain text, and an SVG chart of chosen players' cumulative
// OPS by date. Command ties them together as the `report` CLI command.
package report

import "github.com/boxscore-dev/boxscore/pkg/seasonview"

// The season model the report presents is read by pkg/seasonview, which the loader's tests
// of the warehouse views share; these names keep the presentation code short.
type (
	Rate         = seasonview.Rate
	Player       = seasonview.Player
	PlayerSeason = seasonview.PlayerSeason
	Point        = seasonview.Point
)
