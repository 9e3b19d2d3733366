package extract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The league part of the fake Stats API serves testdata/league as the source was at the
// fake's clock:
//
//   - schedule-<date>@<timecode>.json: a schedule of one day, valid from that timecode on;
//     /api/v1/schedule merges the days of the range (and filters teamId);
//   - game-<pk>/timestamps.json: every timecode of the game; /feed/live/timestamps serves
//     those up to the clock;
//   - game-<pk>/feed@<timecode>.json: the live feed from that timecode on; /feed/live serves
//     the latest up to the clock (or up to ?timecode=), its metaData.timeStamp set to the
//     latest timecode it stands for, as the API does.
//
// Answers carry an ETag; a request with a matching If-None-Match is answered 304.

const leagueDir = "testdata/league"

// setClock sets the fake's now.
func (f *fakeStatsAPI) setClock(tc string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = tc
}

// answerPathFirst queues answers for the next requests to path (e.g.
// "/api/v1.1/game/746102/feed/live").
func (f *fakeStatsAPI) answerPathFirst(path string, answers ...http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforePath[path] = append(f.beforePath[path], answers...)
}

// requestsTo counts the requests whose path is path.
func (f *fakeStatsAPI) requestsTo(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.URL.Path == path {
			n++
		}
	}
	return n
}

func (f *fakeStatsAPI) handleLeague(mux *http.ServeMux) {
	serve := func(answer func(r *http.Request, clock string) (any, int)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.requests = append(f.requests, r.Clone(r.Context()))
			var next http.HandlerFunc
			if queue := f.beforePath[r.URL.Path]; len(queue) > 0 {
				next, f.beforePath[r.URL.Path] = queue[0], queue[1:]
			}
			clock := f.clock
			f.mu.Unlock()
			if next != nil {
				next(w, r)
				return
			}
			body, code := answer(r, clock)
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			if code != http.StatusOK {
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"messageNumber":10,"message":%q}`, body)
				return
			}
			data, err := json.Marshal(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			sum := sha256.Sum256(data)
			etag := `"` + hex.EncodeToString(sum[:8]) + `"`
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				f.mu.Lock()
				f.notModified++
				f.mu.Unlock()
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_, _ = w.Write(data)
		}
	}
	mux.HandleFunc("GET /api/v1/schedule", serve(func(r *http.Request, clock string) (any, int) {
		q := r.URL.Query()
		if q.Get("sportId") != "1" {
			return "sportId must be 1", http.StatusBadRequest
		}
		from, err1 := time.Parse(time.DateOnly, q.Get("startDate"))
		to, err2 := time.Parse(time.DateOnly, q.Get("endDate"))
		if err1 != nil || err2 != nil {
			return "bad dates", http.StatusBadRequest
		}
		team, _ := strconv.Atoi(q.Get("teamId"))
		dates := []any{}
		total := 0
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			var sched struct {
				Dates []map[string]any `json:"dates"`
			}
			if !readAsOf(filepath.Join(leagueDir, "schedule-"+d.Format(time.DateOnly)), clock, &sched) || len(sched.Dates) == 0 {
				continue
			}
			day := sched.Dates[0]
			var games []any
			for _, g := range day["games"].([]any) {
				teams := g.(map[string]any)["teams"].(map[string]any)
				ids := []int{}
				for _, side := range []string{"away", "home"} {
					ids = append(ids, int(teams[side].(map[string]any)["team"].(map[string]any)["id"].(float64)))
				}
				if (team == 0 || slices.Contains(ids, team)) && g.(map[string]any)["gameType"] == q.Get("gameType") {
					games = append(games, g)
				}
			}
			if len(games) == 0 {
				continue
			}
			day["games"] = games
			day["totalGames"], day["totalItems"] = len(games), len(games)
			total += len(games)
			dates = append(dates, day)
		}
		return map[string]any{"copyright": "fake", "totalItems": total, "totalEvents": 0, "totalGames": total,
			"totalGamesInProgress": 0, "dates": dates}, http.StatusOK
	}))
	mux.HandleFunc("GET /api/v1.1/game/{pk}/feed/live/timestamps", serve(func(r *http.Request, clock string) (any, int) {
		codes, ok := timestampsOf(r.PathValue("pk"))
		if !ok {
			return "Object not found", http.StatusNotFound
		}
		return upTo(codes, clock), http.StatusOK
	}))
	mux.HandleFunc("GET /api/v1.1/game/{pk}/feed/live", serve(func(r *http.Request, clock string) (any, int) {
		codes, ok := timestampsOf(r.PathValue("pk"))
		if !ok {
			return "Object not found", http.StatusNotFound
		}
		at := clock
		if tc := r.URL.Query().Get("timecode"); tc != "" {
			if _, err := ParseTimecode(tc); err != nil {
				return "bad timecode", http.StatusBadRequest
			}
			at = min(tc, clock)
		}
		codes = upTo(codes, at)
		var feed map[string]any
		if len(codes) == 0 || !readAsOf(filepath.Join(leagueDir, "game-"+r.PathValue("pk"), "feed"), codes[len(codes)-1], &feed) {
			return "Object not found", http.StatusNotFound
		}
		feed["metaData"].(map[string]any)["timeStamp"] = codes[len(codes)-1]
		return feed, http.StatusOK
	}))
}

func timestampsOf(pk string) ([]string, bool) {
	data, err := os.ReadFile(filepath.Join(leagueDir, "game-"+pk, "timestamps.json"))
	if err != nil {
		return nil, false
	}
	var codes []string
	if err := json.Unmarshal(data, &codes); err != nil {
		panic(fmt.Sprintf("fixture %s: %v", pk, err)) // a broken fixture is the test's bug
	}
	return codes, true
}

func upTo(codes []string, at string) []string {
	var out []string
	for _, c := range codes {
		if c <= at {
			out = append(out, c)
		}
	}
	return out
}

// readAsOf decodes prefix@<timecode>.json with the latest timecode not after at; false when
// there is none.
func readAsOf(prefix, at string, v any) bool {
	files, err := filepath.Glob(prefix + "@*.json")
	if err != nil {
		panic(err)
	}
	best := ""
	for _, f := range files {
		tc := strings.TrimSuffix(f[strings.LastIndex(f, "@")+1:], ".json")
		if tc <= at && tc > best {
			best = tc
		}
	}
	if best == "" {
		return false
	}
	data, err := os.ReadFile(prefix + "@" + best + ".json")
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		panic(fmt.Sprintf("fixture %s@%s: %v", prefix, best, err))
	}
	return true
}

// leagueCommand is a league-mode command against the fake API, posting to gateway (or
// writing CSV when gateway is "").
func leagueCommand(t *testing.T, api *fakeStatsAPI, gateway string) *Command {
	t.Helper()
	return &Command{From: "2024-04-10", To: "2024-04-11", GameType: "R", Concurrency: 3, TimeZone: "America/New_York",
		BaseURL: api.URL, Timeout: 5 * time.Second, Out: "-", Post: gateway != "", Gateway: gateway}
}
