package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// ScheduleResponse is the part of /api/v1/schedule the league extraction reads.
type ScheduleResponse struct {
	// Dates is nil when the answer has no "dates" member: that is not a schedule. A day
	// without games is simply absent from the list.
	Dates *[]ScheduleDate `json:"dates"`
}

// ScheduleDate is one day of a schedule.
type ScheduleDate struct {
	Date  string          `json:"date"`
	Games []ScheduledGame `json:"games"`
}

// ScheduledGame is one game of a schedule day. A game keeps its gamePk when it is
// postponed or suspended: it is then listed on its first date (postponed, or suspended
// with resumeDate) and again on the date it is played or completed.
type ScheduledGame struct {
	GamePk       int64      `json:"gamePk"`
	GameType     string     `json:"gameType"`
	Season       string     `json:"season"`
	OfficialDate string     `json:"officialDate"`
	Status       GameStatus `json:"status"`
	Teams        struct {
		Away ScheduleSide `json:"away"`
		Home ScheduleSide `json:"home"`
	} `json:"teams"`
	// DoubleHeader is "N" for a single game, "Y" (two admissions) or "S" (split
	// admission) for a doubleheader; GameNumber is 1 or 2.
	DoubleHeader string `json:"doubleHeader"`
	GameNumber   int    `json:"gameNumber"`
	// ResumeDate (a date-time) and ResumeGameDate (a date) are set on the entry of a game
	// suspended that day: when it is completed.
	ResumeDate     string `json:"resumeDate"`
	ResumeGameDate string `json:"resumeGameDate"`
	// ResumedFrom is set on the entry of the day a suspended game is completed.
	ResumedFrom string `json:"resumedFrom"`
	// RescheduleDate (a date-time) and RescheduleGameDate (a date) are set on the entry of a
	// postponed game: its makeup date.
	RescheduleDate     string `json:"rescheduleDate"`
	RescheduleGameDate string `json:"rescheduleGameDate"`
}

// GameStatus is a game's status. CodedGameState is the one-letter state the extractor
// decides on: "F" final, "D" postponed, "C" cancelled, "T"/"U" suspended, others not final.
type GameStatus struct {
	AbstractGameState string `json:"abstractGameState"`
	CodedGameState    string `json:"codedGameState"`
	DetailedState     string `json:"detailedState"`
	StatusCode        string `json:"statusCode"`
	Reason            string `json:"reason"`
}

// ScheduleSide is one team of a scheduled game.
type ScheduleSide struct {
	Team Club `json:"team"`
}

// LiveFeed is the part of the game's live feed (/api/v1.1/game/{gamePk}/feed/live) the
// league extraction reads: the status, the box score and when the last play ended.
type LiveFeed struct {
	GamePk   int64 `json:"gamePk"`
	MetaData struct {
		// TimeStamp is the timecode (YYYYMMDD_HHMMSS, UTC) of this state of the game.
		TimeStamp string `json:"timeStamp"`
	} `json:"metaData"`
	GameData struct {
		Status GameStatus `json:"status"`
	} `json:"gameData"`
	LiveData *struct {
		Plays struct {
			AllPlays []struct {
				About struct {
					EndTime string `json:"endTime"`
				} `json:"about"`
			} `json:"allPlays"`
		} `json:"plays"`
		Boxscore struct {
			Teams *struct {
				Away BoxscoreTeam `json:"away"`
				Home BoxscoreTeam `json:"home"`
			} `json:"teams"`
		} `json:"boxscore"`
	} `json:"liveData"`
}

// BoxscoreTeam is one side of a box score.
type BoxscoreTeam struct {
	Team    Club                      `json:"team"`
	Players map[string]BoxscorePlayer `json:"players"` // keyed "ID<mlb id>"
}

// BoxscorePlayer is a player of a box score. Stats.Batting is {} for a player who did not
// bat (a pitcher in a lineup with a designated hitter, a bench player who did not enter).
type BoxscorePlayer struct {
	Person Person `json:"person"`
	// BattingOrder is set ("100", "101", ...) for every player who took a place in the
	// batting order, pinch runners and defensive substitutes included.
	BattingOrder string `json:"battingOrder"`
	Stats        struct {
		Batting HittingStat `json:"batting"`
	} `json:"stats"`
}

// timecodePattern is the Stats API's timecode: YYYYMMDD_HHMMSS in UTC.
var timecodePattern = regexp.MustCompile(`^\d{8}_\d{6}$`)

// ParseTimecode reads a Stats API timecode (YYYYMMDD_HHMMSS, UTC).
func ParseTimecode(tc string) (time.Time, error) {
	if !timecodePattern.MatchString(tc) {
		return time.Time{}, fmt.Errorf("timecode %q is not YYYYMMDD_HHMMSS", tc)
	}
	t, err := time.Parse("20060102_150405", tc)
	if err != nil {
		return time.Time{}, fmt.Errorf("timecode %q: %w", tc, err)
	}
	return t, nil
}

// Schedule fetches the games of gameType from startDate to endDate (YYYY-MM-DD, inclusive),
// of one team when teamID > 0.
func (c *Client) Schedule(ctx context.Context, startDate, endDate, gameType string, teamID int) ([]ScheduleDate, error) {
	endpoint, err := url.JoinPath(c.baseURL, "api", "v1", "schedule")
	if err != nil {
		return nil, fmt.Errorf("build schedule URL: %w", err)
	}
	q := url.Values{}
	q.Set("sportId", "1")
	q.Set("startDate", startDate)
	q.Set("endDate", endDate)
	q.Set("gameType", gameType)
	if teamID > 0 {
		q.Set("teamId", strconv.Itoa(teamID))
	}
	endpoint += "?" + q.Encode()
	what := fmt.Sprintf("schedule %s to %s", startDate, endDate)
	body, err := c.fetch(ctx, endpoint, false, what)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var resp ScheduleResponse
	if err := decodeJSON(body, &resp); err != nil {
		return nil, fmt.Errorf("%s: GET %s: %w", what, endpoint, err)
	}
	if resp.Dates == nil {
		return nil, fmt.Errorf("%s: GET %s: the response is not a schedule: it has no \"dates\" list: %s", what, endpoint, snippet(body))
	}
	return *resp.Dates, nil
}

// LiveFeed fetches a game's live feed: its current state when timecode is empty, else its
// state at that timecode (an answer that never changes, so it is fetched once per run).
func (c *Client) LiveFeed(ctx context.Context, gamePk int64, timecode string) (*LiveFeed, error) {
	endpoint, err := url.JoinPath(c.baseURL, "api", "v1.1", "game", strconv.FormatInt(gamePk, 10), "feed", "live")
	if err != nil {
		return nil, fmt.Errorf("build live feed URL: %w", err)
	}
	what := fmt.Sprintf("game %d", gamePk)
	if timecode != "" {
		endpoint += "?" + url.Values{"timecode": {timecode}}.Encode()
		what += " at " + timecode
	}
	body, err := c.fetch(ctx, endpoint, timecode != "", what)
	if err != nil {
		return nil, fmt.Errorf("%s: live feed: %w", what, err)
	}
	var feed LiveFeed
	if err := decodeJSON(body, &feed); err != nil {
		return nil, fmt.Errorf("%s: GET %s: %w", what, endpoint, err)
	}
	if feed.GamePk != gamePk || feed.LiveData == nil || feed.LiveData.Boxscore.Teams == nil {
		return nil, fmt.Errorf("%s: GET %s: the response is not the live feed of game %d (gamePk %d, liveData.boxscore.teams missing: %t): %s",
			what, endpoint, gamePk, feed.GamePk, feed.LiveData == nil || feed.LiveData.Boxscore.Teams == nil, snippet(body))
	}
	return &feed, nil
}

// Timecodes fetches the timecodes of every recorded state of a game, oldest first.
func (c *Client) Timecodes(ctx context.Context, gamePk int64) ([]string, error) {
	endpoint, err := url.JoinPath(c.baseURL, "api", "v1.1", "game", strconv.FormatInt(gamePk, 10), "feed", "live", "timestamps")
	if err != nil {
		return nil, fmt.Errorf("build timestamps URL: %w", err)
	}
	what := fmt.Sprintf("game %d", gamePk)
	body, err := c.fetch(ctx, endpoint, false, what)
	if err != nil {
		return nil, fmt.Errorf("%s: timestamps: %w", what, err)
	}
	var codes []string
	if err := decodeJSON(body, &codes); err != nil {
		return nil, fmt.Errorf("%s: GET %s: %w", what, endpoint, err)
	}
	for i, tc := range codes {
		if _, err := ParseTimecode(tc); err != nil {
			return nil, fmt.Errorf("%s: GET %s: entry %d: %w", what, endpoint, i, err)
		}
		if i > 0 && tc <= codes[i-1] {
			return nil, fmt.Errorf("%s: GET %s: timecodes are not in increasing order (%s after %s)", what, endpoint, tc, codes[i-1])
		}
	}
	return codes, nil
}

// decodeJSON reads a complete 200 body into v, telling a body that is not JSON from JSON
// of the wrong shape.
func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return fmt.Errorf("the response is not JSON (%w): %s", err, snippet(body))
		}
		return fmt.Errorf("the response does not have the expected shape (%w): %s", err, snippet(body))
	}
	return nil
}
