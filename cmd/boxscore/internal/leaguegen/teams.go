package leaguegen

import "fmt"

// Team is one of the 30 major-league clubs.
type Team struct {
	Code     string // the MLB Stats API abbreviation, as the team and opponent columns carry it
	Retro    string // the Retrosheet code, the prefix of a game id (home team + date + game number)
	League   string // AL or NL
	Division string // East, Central or West
}

// teamsByLeague lists the American League then the National League. The National League is
// ordered so that position i in it is the natural interleague rival of position i in the
// American League (NYY-NYM, CWS-CHC, LAA-LAD, ...): the interleague pairing below relies on it.
var teamsByLeague = [2][15]Team{
	{
		{"BAL", "BAL", "AL", "East"}, {"BOS", "BOS", "AL", "East"}, {"NYY", "NYA", "AL", "East"},
		{"TB", "TBA", "AL", "East"}, {"TOR", "TOR", "AL", "East"},
		{"CWS", "CHA", "AL", "Central"}, {"CLE", "CLE", "AL", "Central"}, {"DET", "DET", "AL", "Central"},
		{"KC", "KCA", "AL", "Central"}, {"MIN", "MIN", "AL", "Central"},
		{"HOU", "HOU", "AL", "West"}, {"LAA", "ANA", "AL", "West"}, {"OAK", "OAK", "AL", "West"},
		{"SEA", "SEA", "AL", "West"}, {"TEX", "TEX", "AL", "West"},
	},
	{
		{"WSH", "WAS", "NL", "East"}, {"ATL", "ATL", "NL", "East"}, {"NYM", "NYN", "NL", "East"},
		{"MIA", "MIA", "NL", "East"}, {"PHI", "PHI", "NL", "East"},
		{"CHC", "CHN", "NL", "Central"}, {"CIN", "CIN", "NL", "Central"}, {"PIT", "PIT", "NL", "Central"},
		{"STL", "SLN", "NL", "Central"}, {"MIL", "MIL", "NL", "Central"},
		{"COL", "COL", "NL", "West"}, {"LAD", "LAN", "NL", "West"}, {"SF", "SFN", "NL", "West"},
		{"SD", "SDN", "NL", "West"}, {"AZ", "ARI", "NL", "West"},
	},
}

// Teams returns the 30 teams of a season, American League first; index i of the result is
// the team index used by Game and Transaction. The Athletics are OAK until 2024 and ATH from
// 2025, as the Stats API abbreviates them.
func Teams(season int) []Team {
	teams := make([]Team, 0, 30)
	for _, league := range teamsByLeague {
		for _, t := range league {
			if t.Code == "OAK" && season >= 2025 {
				t.Code, t.Retro = "ATH", "ATH"
			}
			teams = append(teams, t)
		}
	}
	return teams
}

// teamIndex finds a team by its code in teams.
func teamIndex(teams []Team, code string) (int, error) {
	for i, t := range teams {
		if t.Code == code {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown team %q", code)
}
