// Package report presents the warehouse's season model, as pkg/seasonview reads it: a
// plain-text leaderboard and an SVG chart of each player's cumulative OPS by date. Command
// ties them together as the `report` CLI command.
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
