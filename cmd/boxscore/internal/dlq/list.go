package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// ListCommand is `boxscore dlq list`.
type ListCommand struct {
	Warehouse `embed:""`
	Filters   `embed:""`
	Limit     int  `name:"limit" default:"100" help:"At most this many dead letters: the most recent, listed oldest first (0: all)."`
	JSON      bool `name:"json" help:"One JSON object per dead letter and line (NDJSON) instead of a table."`
}

// Run prints the dead letters selected.
func (c *ListCommand) Run(ctx context.Context, stdout, stderr io.Writer) error {
	f, err := c.filter(time.Now())
	if err != nil {
		return err
	}
	if c.Limit < 0 {
		return fmt.Errorf("--limit must be 0 or more, got %d", c.Limit)
	}
	f.Limit = c.Limit
	return withStore(ctx, c.Warehouse, stderr, func(s *store) error {
		letters, err := s.list(ctx, f)
		if err != nil {
			return err
		}
		if c.JSON {
			enc := json.NewEncoder(stdout)
			for _, l := range letters {
				if err := enc.Encode(toJSON(l)); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			return nil
		}
		return writeTable(stdout, letters)
	})
}

func writeTable(w io.Writer, letters []Letter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWHEN\tSTAGE\tREASON\tEVENT ID\tPLAYER\tGAME\tPRODUCER\tPOSITION\tREPLAYED")
	for _, l := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.CreatedAt.UTC().Format(time.RFC3339),
			l.Stage, l.Reason, dash(l.EventID), dash(playerText(l.PlayerID)), dash(l.GameID), dash(l.Producer),
			l.ShardID+"/"+l.SequenceNumber, replayedText(l))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func playerText(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}

func replayedText(l Letter) string {
	if l.ReplayedAt == nil {
		return "no"
	}
	s := l.ReplayedAt.UTC().Format(time.RFC3339)
	if l.ReplayEventVersion != nil {
		s += " as v" + strconv.FormatInt(*l.ReplayEventVersion, 10)
	}
	return s
}

// letterJSON is a dead letter in JSON (list --json, show --json).
type letterJSON struct {
	ID                 int64      `json:"id"`
	CreatedAt          time.Time  `json:"createdAt"`
	Stage              string     `json:"stage"`
	Reason             string     `json:"reason"`
	Detail             string     `json:"detail,omitempty"`
	Field              string     `json:"field,omitempty"`
	EventID            string     `json:"eventId,omitempty"`
	Stream             string     `json:"stream"`
	ShardID            string     `json:"shardId"`
	SequenceNumber     string     `json:"sequenceNumber"`
	PlayerID           *int64     `json:"playerId,omitempty"`
	GameID             string     `json:"gameId,omitempty"`
	Producer           string     `json:"producer,omitempty"`
	ReplayedAt         *time.Time `json:"replayedAt,omitempty"`
	ReplayEventID      string     `json:"replayEventId,omitempty"`
	ReplayEventVersion *int64     `json:"replayEventVersion,omitempty"`

	// show only
	PayloadForm  string            `json:"payloadForm,omitempty"`
	PayloadBytes *int              `json:"payloadBytes,omitempty"`
	PayloadError string            `json:"payloadError,omitempty"`
	Payload      []byte            `json:"payload,omitempty"` // base64, when undecodable
	AcceptedAt   *time.Time        `json:"acceptedAt,omitempty"`
	TraceContext map[string]string `json:"traceContext,omitempty"`
	// Event is the decoded event in the ingest API's JSON form: what replay --from-file reads.
	Event json.RawMessage `json:"event,omitempty"`
}

func toJSON(l Letter) letterJSON {
	return letterJSON{
		ID: l.ID, CreatedAt: l.CreatedAt.UTC(), Stage: l.Stage, Reason: l.Reason, Detail: l.Detail, Field: l.Field,
		EventID: l.EventID, Stream: l.Stream, ShardID: l.ShardID, SequenceNumber: l.SequenceNumber,
		PlayerID: l.PlayerID, GameID: l.GameID, Producer: l.Producer, ReplayedAt: l.ReplayedAt, ReplayEventID: l.ReplayEventID,
		ReplayEventVersion: l.ReplayEventVersion,
	}
}
