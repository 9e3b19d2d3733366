package extract

import "fmt"

// clubAbbreviations maps the Stats API team id of each of the 30 MLB clubs to the
// abbreviation MLB uses today. The game-log CSV carries abbreviations, the split only ids
// and names.
var clubAbbreviations = map[int]string{
	108: "LAA", // Los Angeles Angels
	109: "AZ",  // Arizona Diamondbacks
	110: "BAL", // Baltimore Orioles
	111: "BOS", // Boston Red Sox
	112: "CHC", // Chicago Cubs
	113: "CIN", // Cincinnati Reds
	114: "CLE", // Cleveland Guardians
	115: "COL", // Colorado Rockies
	116: "DET", // Detroit Tigers
	117: "HOU", // Houston Astros
	118: "KC",  // Kansas City Royals
	119: "LAD", // Los Angeles Dodgers
	120: "WSH", // Washington Nationals
	121: "NYM", // New York Mets
	133: "ATH", // Athletics
	134: "PIT", // Pittsburgh Pirates
	135: "SD",  // San Diego Padres
	136: "SEA", // Seattle Mariners
	137: "SF",  // San Francisco Giants
	138: "STL", // St. Louis Cardinals
	139: "TB",  // Tampa Bay Rays
	140: "TEX", // Texas Rangers
	141: "TOR", // Toronto Blue Jays
	142: "MIN", // Minnesota Twins
	143: "PHI", // Philadelphia Phillies
	144: "ATL", // Atlanta Braves
	145: "CWS", // Chicago White Sox
	146: "MIA", // Miami Marlins
	147: "NYY", // New York Yankees
	158: "MIL", // Milwaukee Brewers
}

// formerAbbreviations are the abbreviations a club id had before a move or a rename, with
// the last season they were used: the same id spans them, and a 2010 Marlins game should
// not read MIA.
var formerAbbreviations = map[int][]struct {
	untilSeason  int
	abbreviation string
}{
	120: {{2004, "MON"}}, // Montreal Expos, Washington from 2005
	133: {{2024, "OAK"}}, // Oakland Athletics, "ATH" from 2025
	146: {{2011, "FLA"}}, // Florida Marlins, Miami from 2012
}

// UnknownTeamError is a team id that is not one of the 30 MLB clubs.
type UnknownTeamError struct {
	ID   int
	Name string
}

func (e *UnknownTeamError) Error() string {
	return fmt.Sprintf("unknown team id %d (%q): not one of the 30 MLB clubs the extractor knows", e.ID, e.Name)
}

// ClubAbbreviation returns the abbreviation of the club with Stats API id teamID in season.
func ClubAbbreviation(teamID, season int) (string, bool) {
	abbreviation, ok := clubAbbreviations[teamID]
	if !ok {
		return "", false
	}
	for _, former := range formerAbbreviations[teamID] {
		if season <= former.untilSeason {
			return former.abbreviation, true
		}
	}
	return abbreviation, true
}

func clubAbbreviation(c Club, season int) (string, error) {
	if a, ok := ClubAbbreviation(c.ID, season); ok {
		return a, nil
	}
	return "", &UnknownTeamError{ID: c.ID, Name: c.Name}
}
