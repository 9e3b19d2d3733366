package dlq

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// ReplayCommand is `boxscore dlq replay`.
type ReplayCommand struct {
	Warehouse  `embed:""`
	Filters    `embed:""`
	IDs        []int64 `name:"id" help:"Dead letters to replay, by id; repeat or separate with commas."`
	FromFile   string  `name:"from-file" placeholder:"FILE" type:"existingfile" help:"Replay edited events: NDJSON lines, each a 'dlq show --json' line (its event edited) or an event in the ingest API's JSON form whose eventId is a dead letter's."`
	GatewayURL string  `name:"gateway-url" env:"BOXSCORE_GATEWAY_URL" default:"http://127.0.0.1:8080" help:"Base URL of the ingest API."`
	credential.Flags
	Force       bool          `name:"force" help:"Replay dead letters already replayed, and those superseded by a newer version in the warehouse."`
	DryRun      bool          `name:"dry-run" help:"Print what would be sent, send nothing, mark nothing."`
	RetryBudget time.Duration `name:"retry-budget" default:"1m" help:"How long one batch may be retried (gateway busy or unreachable)."`
}

// Help is the long help of the command.
func (c *ReplayCommand) Help() string {
	return `Sends dead letters back through the ingest API (POST /v1/stats): each as stored (its
payload decoded; a load dead letter's row turned back into its event), or as edited in
--from-file. The selection is --id and/or the filters; one of them is required.

Version rule: a replayed event always carries a version higher than the dead letter's
event, so it can replace what the warehouse holds of that game:
  version = max(stored version + 1, the edited event's version, last replay's version + 1)
and, when the warehouse already holds a version of that (player, game) at or above it, that
version + 1. A dead letter whose game the warehouse holds at a newer version than the stored
one is superseded (a correction arrived since) and skipped unless --force or edited. The
event id is derived from (player, game, version), like the replay command's, so sending the
same replay twice adds nothing twice.

On 202 each dead letter is marked replayed (replayed_at, with the new event id and
version); a replay again skips marked ones unless --force. Events the gateway refuses (422)
are reported with their violations and not marked. The exit status is non-zero when any
selected dead letter was neither replayed nor skipped.`
}

// outcome of one dead letter in a replay.
type outcome struct {
	letter  Letter
	event   *statsv1.StatEvent // to send
	status  string             // replayed, skipped, rejected, failed, unsettled, would-replay
	message string
}

// Run replays the selected dead letters.
func (c *ReplayCommand) Run(ctx context.Context, stdout, stderr io.Writer) error {
	f, err := c.filter(time.Now())
	if err != nil {
		return err
	}
	f.IDs = c.IDs
	var edits []edit
	if c.FromFile != "" {
		if edits, err = readEdits(c.FromFile); err != nil {
			return err
		}
	} else if f.empty() {
		return errors.New("say which dead letters to replay: --id, a filter (--since, --stage, --reason, --player, ...) or --from-file")
	}
	return withStore(ctx, c.Warehouse, stderr, func(s *store) error {
		outcomes, err := c.plan(ctx, s, f, edits)
		if err != nil {
			return err
		}
		if !c.DryRun {
			if err := c.send(ctx, s, outcomes); err != nil {
				return errors.Join(err, report(stdout, outcomes))
			}
		}
		return report(stdout, outcomes)
	})
}

// edit is one line of --from-file.
type edit struct {
	line     int
	letterID int64 // 0: find the dead letter by the event's id
	event    *statsv1.StatEvent
}

func readEdits(path string) ([]edit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--from-file: %w", err)
	}
	var edits []edit
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var shown struct {
			ID    int64           `json:"id"`
			Event json.RawMessage `json:"event"`
		}
		e := edit{line: n, event: &statsv1.StatEvent{}}
		raw := text
		if err := json.Unmarshal(text, &shown); err == nil && len(shown.Event) > 0 {
			e.letterID, raw = shown.ID, shown.Event
		}
		if err := protojson.Unmarshal(raw, e.event); err != nil {
			return nil, fmt.Errorf("--from-file %s, line %d: not an event in the ingest API's JSON form: %w", path, n, err)
		}
		if e.letterID == 0 && e.event.GetEventId() == "" {
			return nil, fmt.Errorf("--from-file %s, line %d: neither a dead letter id nor an eventId says which dead letter it replaces", path, n)
		}
		edits = append(edits, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--from-file %s: %w", path, err)
	}
	if len(edits) == 0 {
		return nil, fmt.Errorf("--from-file %s holds no event", path)
	}
	return edits, nil
}

// plan selects the dead letters and decides, for each, what is sent (or why nothing is).
func (c *ReplayCommand) plan(ctx context.Context, s *store, f Filter, edits []edit) ([]*outcome, error) {
	var letters []Letter
	edited := map[int64]*statsv1.StatEvent{}
	if edits == nil {
		var err error
		if letters, err = s.list(ctx, f); err != nil {
			return nil, err
		}
	} else {
		seen := map[int64]bool{}
		for _, e := range edits {
			ef := f
			if e.letterID != 0 {
				ef.IDs = []int64{e.letterID}
			} else {
				ef.EventIDs = []string{e.event.GetEventId()}
			}
			found, err := s.list(ctx, ef)
			if err != nil {
				return nil, err
			}
			if len(found) == 0 {
				return nil, fmt.Errorf("--from-file line %d: no dead letter selected has %s", e.line, e.describe())
			}
			for _, l := range found {
				if !seen[l.ID] {
					seen[l.ID] = true
					letters = append(letters, l)
				}
				edited[l.ID] = e.event
			}
		}
	}

	outcomes := make([]*outcome, 0, len(letters))
	var players []int64
	var games []string
	for _, l := range letters {
		o := &outcome{letter: l}
		outcomes = append(outcomes, o)
		if l.ReplayedAt != nil && !c.Force {
			o.status, o.message = "skipped", fmt.Sprintf("already replayed at %s as event %s (--force to replay again)",
				l.ReplayedAt.UTC().Format(time.RFC3339), l.ReplayEventID)
			continue
		}
		ev := edited[l.ID]
		if ev == nil {
			d := decodePayload(l.Stage, l.Payload)
			if d.Event == nil {
				o.status, o.message = "failed", fmt.Sprintf("the payload cannot be decoded (%v): replay it edited with --from-file", d.Err)
				continue
			}
			ev = d.Event
		}
		o.event = proto.CloneOf(ev)
		players = append(players, ev.GetPlayer().GetMlbId())
		games = append(games, ev.GetGame().GetGameId())
	}
	inWarehouse, err := s.warehouseVersions(ctx, players, games)
	if err != nil {
		return nil, err
	}
	for _, o := range outcomes {
		if o.event != nil {
			c.version(o, edited[o.letter.ID] != nil, inWarehouse)
		}
	}
	return outcomes, nil
}

func (e edit) describe() string {
	if e.letterID != 0 {
		return fmt.Sprintf("id %d", e.letterID)
	}
	return fmt.Sprintf("event id %q", e.event.GetEventId())
}

// version applies the version rule (see Help) to o.event and gives it its new id.
func (c *ReplayCommand) version(o *outcome, edited bool, inWarehouse map[gameKey]int64) {
	stored := decodePayload(o.letter.Stage, o.letter.Payload).Event.GetVersion()
	v := stored + 1
	if edited && o.event.GetVersion() > v {
		v = o.event.GetVersion()
	}
	if o.letter.ReplayEventVersion != nil && *o.letter.ReplayEventVersion >= v {
		v = *o.letter.ReplayEventVersion + 1
	}
	key := gameKey{o.event.GetPlayer().GetMlbId(), o.event.GetGame().GetGameId()}
	if wh, ok := inWarehouse[key]; ok {
		if wh > stored && !edited && !c.Force {
			o.status, o.message = "skipped", fmt.Sprintf("superseded: the warehouse holds version %d of this game, newer than the dead letter's %d (--force to replay anyway)", wh, stored)
			o.event = nil
			return
		}
		if wh >= v {
			v = wh + 1
		}
	}
	o.event.Version = v
	o.event.EventId = statevent.DeterministicEventID(key.player, key.game, v)
	o.status = "would-replay"
	o.message = fmt.Sprintf("as event %s version %d", o.event.GetEventId(), v)
}

// send posts the planned events and marks the dead letters the gateway accepted.
func (c *ReplayCommand) send(ctx context.Context, s *store, outcomes []*outcome) error {
	var events []*statsv1.StatEvent
	var sent []*outcome
	for _, o := range outcomes {
		if o.event != nil {
			events = append(events, o.event)
			sent = append(sent, o)
		}
	}
	if len(events) == 0 {
		return nil
	}
	gateway := c.GatewayURL
	if gateway == "" {
		gateway = "http://127.0.0.1:8080"
	}
	key, err := c.Resolve(gateway)
	if err != nil {
		return err
	}
	opts := []ingestclient.Option{ingestclient.WithRetryBudget(c.retryBudget()), key.Option()}
	res, sendErr := ingestclient.New(gateway, opts...).Send(ctx, events)
	sendErr = key.Explain(sendErr)
	var ids []int64
	var eventIDs []string
	var versions []int64
	for i, o := range sent {
		r := res.Events[i]
		switch r.Status {
		case ingestclient.StatusAccepted:
			o.status = "replayed"
			o.message = fmt.Sprintf("as event %s version %d (%s %s)", o.event.GetEventId(), o.event.GetVersion(), r.ShardID, r.SequenceNumber)
			ids, eventIDs, versions = append(ids, o.letter.ID), append(eventIDs, o.event.GetEventId()), append(versions, o.event.GetVersion())
		case ingestclient.StatusRejected:
			vs := make([]string, len(r.Violations))
			for j, v := range r.Violations {
				vs[j] = v.String()
			}
			o.status, o.message = "rejected", "the gateway refused it (422): "+strings.Join(vs, "; ")
		default:
			o.status, o.message = "unsettled", "not acknowledged by the gateway; replaying again is safe"
		}
	}
	// Mark what was accepted even when the rest failed.
	markErr := s.markReplayed(ctx, ids, eventIDs, versions)
	if sendErr != nil {
		sendErr = fmt.Errorf("send to the ingest API: %w", sendErr)
	}
	return errors.Join(sendErr, markErr)
}

func (c *ReplayCommand) retryBudget() time.Duration {
	if c.RetryBudget <= 0 {
		return time.Minute
	}
	return c.RetryBudget
}

// report prints one line per dead letter and a summary, and returns an error when some
// were neither replayed nor skipped.
func report(w io.Writer, outcomes []*outcome) error {
	counts := map[string]int{}
	var b strings.Builder
	for _, o := range outcomes {
		counts[o.status]++
		fmt.Fprintf(&b, "%-12s dead letter %d (%s %s, event %s): %s\n", o.status, o.letter.ID, o.letter.Stage, o.letter.Reason, dash(o.letter.EventID), o.message)
	}
	fmt.Fprintf(&b, "%d dead letters: %d replayed, %d skipped, %d rejected, %d failed, %d unsettled",
		len(outcomes), counts["replayed"], counts["skipped"], counts["rejected"], counts["failed"], counts["unsettled"])
	if counts["would-replay"] > 0 {
		fmt.Fprintf(&b, ", %d would be replayed (dry run)", counts["would-replay"])
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if bad := counts["rejected"] + counts["failed"] + counts["unsettled"]; bad > 0 {
		return fmt.Errorf("%d of %d dead letters were not replayed", bad, len(outcomes))
	}
	return nil
}
