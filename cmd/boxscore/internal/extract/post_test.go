package extract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

func TestPostSendsEveryRowAsAnEventInsteadOfWritingCSV(t *testing.T) {
	api := newFakeStatsAPI(t)
	gw := gatewaytest.Start(t)
	var stdout, stderr bytes.Buffer
	cmd := &Command{Players: []int64{playerNormal, playerDoubleheader, playerPostponed}, Season: 2024,
		BaseURL: api.URL, Timeout: 5 * time.Second, Out: "-", Post: true, Gateway: gw.URL}
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
	}
	mustContain(t, stdout.String(), "posted season 2024 to "+gw.URL, "events     14", "sent       14", "accepted   14", "rejected   0")
	if strings.Contains(stdout.String(), "season,game_date") {
		t.Errorf("--post wrote CSV: %s", &stdout)
	}

	var rows []gamelog.Row
	for _, id := range []int64{playerNormal, playerDoubleheader, playerPostponed} {
		rows = append(rows, extractRows(t, api, id)...)
	}
	SortRows(rows)
	accepted := gw.Accepted()
	if len(accepted) != len(rows) {
		t.Fatalf("gateway accepted %d events, want %d", len(accepted), len(rows))
	}
	for i, r := range rows {
		if want := r.Event(Source); !proto.Equal(accepted[i], want) {
			t.Errorf("event %d = %v, want %v", i, accepted[i], want)
		}
	}
	for _, req := range gw.Requests() {
		if !strings.HasPrefix(req.UserAgent, "boxscore/") {
			t.Errorf("User-Agent = %q", req.UserAgent)
		}
	}

	// Posting again sends the same event ids, so the warehouse keeps one line per game.
	stdout.Reset()
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	again := gw.Accepted()[len(rows):]
	for i := range rows {
		if again[i].GetEventId() != accepted[i].GetEventId() {
			t.Errorf("event %d has id %s the second time, %s the first", i, again[i].GetEventId(), accepted[i].GetEventId())
		}
	}
}

// syntheticRows returns n valid rows of n distinct games.
func syntheticRows(n int) []gamelog.Row {
	rows := make([]gamelog.Row, n)
	for i := range rows {
		tb := 1
		rows[i] = gamelog.Row{Season: 2024, GameDate: "2024-05-01", GameID: fmt.Sprint(800000 + i), PlayerID: int64(1000 + i%7),
			PlayerName: "Player " + fmt.Sprint(i%7), Team: "LAD", Opponent: "SD", Version: 1,
			PlateAppearances: 4, AtBats: 4, Hits: 1, TotalBases: &tb}
	}
	return rows
}

func TestPostBatchesOfAtMost500AndCountsRejectionsByReason(t *testing.T) {
	gw := gatewaytest.Start(t)
	gw.RejectWhen(func(ev *statsv1.StatEvent) []statevent.Violation {
		switch {
		case ev.GetPlayer().GetMlbId() == 1003:
			return []statevent.Violation{{Field: "player.mlbId", Reason: "unknown_player", Detail: "no such player"}}
		case ev.GetGame().GetGameId() == "800011":
			return []statevent.Violation{
				{Field: "game.gameId", Reason: "game_closed", Detail: "the game is closed"},
				{Field: "game.date", Reason: "game_closed", Detail: "a reason counts once per event"},
			}
		}
		return nil
	})
	rows := syntheticRows(1203)
	summary, err := postRows(context.Background(), noInstruments(t), ingestclient.New(gw.URL), rows, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Player 1003 has the rows i with i%7 == 3: 172 of 1203; game 800011 is one more.
	if summary.Events != 1203 || summary.Sent != 1203 || summary.Rejected != 173 || summary.Accepted != 1030 || summary.Unsettled != 0 {
		t.Errorf("summary = %+v", summary)
	}
	if summary.RejectedByReason["unknown_player"] != 172 || summary.RejectedByReason["game_closed"] != 1 {
		t.Errorf("by reason = %v", summary.RejectedByReason)
	}
	if len(summary.Rejections) != maxRejectionLines {
		t.Errorf("%d rejection lines", len(summary.Rejections))
	}
	for _, req := range gw.Requests() {
		if len(req.Events) > 500 {
			t.Errorf("a request of %d events", len(req.Events))
		}
	}
	if got := len(gw.Accepted()); got != 1030 {
		t.Errorf("gateway holds %d events, want 1030", got)
	}

	var out bytes.Buffer
	summary.print(&out, gw.URL, "season 2024")
	mustContain(t, out.String(), "accepted   1030", "rejected   173", "unknown_player                           172", "game_closed                              1", "(and 153 more rejected)")
}

func TestPostFailsWhenEventsAreRejectedOrUnsettled(t *testing.T) {
	api := newFakeStatsAPI(t)

	gw := gatewaytest.Start(t)
	gw.RejectWhen(func(ev *statsv1.StatEvent) []statevent.Violation {
		if ev.GetGame().GetGameId() == "745003" {
			return []statevent.Violation{{Field: "game.gameId", Reason: "game_closed", Detail: "the game is closed"}}
		}
		return nil
	})
	var stdout bytes.Buffer
	cmd := &Command{Players: []int64{playerNormal}, Season: 2024, BaseURL: api.URL, Timeout: 5 * time.Second, Post: true, Gateway: gw.URL}
	err := cmd.Run(context.Background(), &stdout, io.Discard)
	mustContain(t, errString(err), "the gateway rejected 1 of 5 events")
	mustContain(t, stdout.String(), "accepted   4", "rejected   1", "game_closed", "2024-03-28 Shohei Ohtani (660271), game 745003")

	// A permanent answer: the batch is unsettled and the run fails, after the summary.
	gw = gatewaytest.Start(t)
	gw.FailNext(gatewaytest.Fault{Status: 413, Detail: "too big"})
	stdout.Reset()
	cmd.Gateway = gw.URL
	err = cmd.Run(context.Background(), &stdout, io.Discard)
	mustContain(t, errString(err), "post to "+gw.URL, "413")
	mustContain(t, stdout.String(), "accepted   0", "unsettled  5")
}
