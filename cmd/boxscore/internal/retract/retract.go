// Package retract is `boxscore retract`: it sends one retraction (a tombstone) of a (player,
// game) line through the ingest API, so that the line leaves the fact table and the views.
//
// A retraction is an event like any other: versioned and exactly once. Its version must be
// above the stored line's to remove it; a line arriving later with a version at or below the
// retraction's does not bring the row back, a newer one does. Its event id is derived from
// (player, game, version), so sending the same retraction twice removes the line once.
package retract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// MaxClockSkew is how far past the current time, in microseconds since the Unix epoch, a
// version may go: the gateway's version ceiling.
const MaxClockSkew = 5 * time.Minute

// retractionIDNamespace is the UUIDv5 namespace of retraction event ids:
// UUIDv5(NameSpaceURL, "https://boxscore.dev/ns/retraction"), written out so it never changes
// (a changed id would make a resent retraction a second event). It differs from the
// namespace of batting lines, so a retraction never shares an id with a line.
var retractionIDNamespace = uuid.MustParse("5be3a0eb-2ba2-54d8-a627-af30ba7d2fdb")

// EventID returns the id of the retraction of (playerID, gameID) at version.
func EventID(playerID int64, gameID string, version int64) string {
	name := strconv.FormatInt(playerID, 10) + ":" + gameID + ":" + strconv.FormatInt(version, 10)
	return uuid.NewSHA1(retractionIDNamespace, []byte(name)).String()
}

// Command is `boxscore retract`.
type Command struct {
	Player       int64         `name:"player" required:"" placeholder:"MLB-ID" help:"MLB player id of the line to retract."`
	Game         string        `name:"game" required:"" placeholder:"GAME-ID" help:"Game id of the line, as stored (e.g. LAN202409290)."`
	EventVersion int64         `name:"event-version" required:"" help:"Version of the retraction event: above the stored line's version, at most the current time in microseconds since the Unix epoch plus 5 minutes."`
	Reason       string        `name:"reason" required:"" help:"Why the line is withdrawn, kept in the audit trail."`
	Source       string        `name:"source" help:"The event's source, when the API key's producer is limited to sources."`
	Gateway      string        `name:"gateway" env:"BOXSCORE_GATEWAY_URL" default:"http://127.0.0.1:8080" help:"Base URL of the ingest gateway."`
	RetryBudget  time.Duration `name:"retry-budget" default:"1m" help:"How long to retry while the gateway is busy or unreachable."`
	credential.Flags
}

// Help is the long help of the command.
func (c *Command) Help() string {
	return `Sends one retraction of a (player, game) line to the ingest API (POST /v1/stats):
{"eventId", "player": {"mlbId"}, "game": {"gameId"}, "version", "source"?, "retraction": {"reason"}}.
The API key's producer needs the retract scope.

The loader removes the line from the fact table and the views when the retraction's version
is above the stored line's, and records the retraction; a retraction at or below the stored
version changes nothing. Afterwards a line with a version at or below the retraction's is
ignored, and a line with a higher version brings the row back. The event id is derived from
(player, game, version): sending the same retraction again changes nothing more.

The API key is --api-key, else $BOXSCORE_API_KEY, else, for a gateway on loopback only, the
file .run/api-key that 'make up' writes.`
}

// Validate checks the flags (kong calls it after parsing; Run again for callers that build
// a Command by hand).
func (c *Command) Validate() error {
	var errs []error
	if c.Player <= 0 {
		errs = append(errs, fmt.Errorf("--player: %d is not an MLB player id (a positive whole number)", c.Player))
	}
	if strings.TrimSpace(c.Game) == "" {
		errs = append(errs, errors.New("--game: a game id is required"))
	}
	if c.EventVersion < 1 {
		errs = append(errs, fmt.Errorf("--event-version: %d must be 1 or more", c.EventVersion))
	} else if ceiling := time.Now().Add(MaxClockSkew).UnixMicro(); c.EventVersion > ceiling {
		errs = append(errs, fmt.Errorf("--event-version: %d is above the ceiling %d (now in microseconds since the Unix epoch plus %s): the gateway refuses it", c.EventVersion, ceiling, MaxClockSkew))
	}
	if strings.TrimSpace(c.Reason) == "" {
		errs = append(errs, errors.New("--reason: say why the line is withdrawn"))
	}
	return errors.Join(errs...)
}

// Event returns the retraction the command sends.
func (c *Command) Event() *statsv1.StatEvent {
	game := strings.TrimSpace(c.Game)
	return &statsv1.StatEvent{
		EventId:    EventID(c.Player, game, c.EventVersion),
		Player:     &statsv1.Player{MlbId: c.Player},
		Game:       &statsv1.Game{GameId: game},
		Version:    c.EventVersion,
		Source:     strings.TrimSpace(c.Source),
		Retraction: &statsv1.Retraction{Reason: strings.TrimSpace(c.Reason)},
	}
}

// Run sends the retraction and prints where it went, or why the gateway refused it.
func (c *Command) Run(ctx context.Context, stdout, stderr io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	gateway := c.Gateway
	if gateway == "" {
		gateway = "http://127.0.0.1:8080"
	}
	key, err := c.Resolve(gateway)
	if err != nil {
		return err
	}
	budget := c.RetryBudget
	if budget <= 0 {
		budget = time.Minute
	}
	client := ingestclient.New(gateway,
		key.Option(),
		ingestclient.WithRetryBudget(budget),
		ingestclient.WithUserAgent("boxscore-retract/"+buildinfo.String()),
		ingestclient.WithRetryNotify(func(n ingestclient.RetryNotice) {
			fmt.Fprintf(stderr, "gateway: retrying in %s: %v\n", n.Wait.Round(time.Millisecond), n.Err)
		}))
	ev := c.Event()
	res, err := client.Send(ctx, []*statsv1.StatEvent{ev})
	if err != nil {
		return fmt.Errorf("retract player %d game %s version %d: %w", c.Player, ev.GetGame().GetGameId(), c.EventVersion, key.Explain(err))
	}
	out := res.Events[0]
	switch out.Status {
	case ingestclient.StatusAccepted:
		_, err := fmt.Fprintf(stdout, "accepted: retraction of player %d game %s at version %d, event %s (%s, sequence %s)\n"+
			"the loader removes the line if its stored version is below %d\n",
			c.Player, ev.GetGame().GetGameId(), c.EventVersion, out.EventID, out.ShardID, out.SequenceNumber, c.EventVersion)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	case ingestclient.StatusRejected:
		vs := make([]string, len(out.Violations))
		for i, v := range out.Violations {
			vs[i] = v.String()
		}
		return fmt.Errorf("the gateway refused the retraction (422): %s", strings.Join(vs, "; "))
	default:
		return fmt.Errorf("the gateway did not settle the retraction (event %s); sending it again is safe", out.EventID)
	}
}
