package dlq

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

// ShowCommand is `boxscore dlq show`.
type ShowCommand struct {
	Warehouse `embed:""`
	ID        int64 `arg:"" name:"id" help:"Id of the dead letter."`
	JSON      bool  `name:"json" help:"One line of JSON; its \"event\" is in the ingest API's form, and such lines, edited, are what replay --from-file reads."`
}

// Run prints the dead letter.
func (c *ShowCommand) Run(ctx context.Context, stdout, stderr io.Writer) error {
	return withStore(ctx, c.Warehouse, stderr, func(s *store) error {
		l, err := s.get(ctx, c.ID)
		if err != nil {
			return err
		}
		d := decodePayload(l.Stage, l.Payload)
		out := showJSON(l, d)
		if c.JSON {
			if err := json.NewEncoder(stdout).Encode(out); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		}
		return writeShow(stdout, l, d, out)
	})
}

func showJSON(l Letter, d Decoded) letterJSON {
	out := toJSON(l)
	n := len(l.Payload)
	out.PayloadBytes = &n
	out.PayloadForm = d.Form
	if d.Err != nil {
		out.PayloadError = d.Err.Error()
		out.Payload = l.Payload
	}
	if env := d.Envelope; env != nil {
		if env.GetAcceptedAt() != nil {
			t := env.GetAcceptedAt().AsTime()
			out.AcceptedAt = &t
		}
		out.TraceContext = env.GetTraceContext()
	}
	// A letter stored before the producer column has it in its payload, when it got that far.
	if out.Producer == "" {
		out.Producer = cmp.Or(d.Envelope.GetProducer(), d.Row.GetProducer())
	}
	if d.Event != nil {
		if data, err := protojson.Marshal(d.Event); err == nil {
			out.Event = data
		}
	}
	return out
}

func writeShow(w io.Writer, l Letter, d Decoded, j letterJSON) error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-16s %s\n", k, v) }
	line("id", fmt.Sprint(l.ID))
	line("created", l.CreatedAt.UTC().Format(time.RFC3339Nano))
	line("stage", l.Stage)
	line("reason", l.Reason)
	line("field", dash(l.Field))
	line("detail", dash(l.Detail))
	line("event id", dash(l.EventID))
	line("position", l.Stream+" "+l.ShardID+" "+l.SequenceNumber)
	line("player", dash(playerText(l.PlayerID)))
	line("game", dash(l.GameID))
	line("producer", dash(j.Producer))
	if l.ReplayedAt != nil {
		v := ""
		if l.ReplayEventVersion != nil {
			v = fmt.Sprintf(" version %d", *l.ReplayEventVersion)
		}
		line("replayed", fmt.Sprintf("%s as event %s%s", l.ReplayedAt.UTC().Format(time.RFC3339), l.ReplayEventID, v))
	} else {
		line("replayed", "no")
	}
	payload := fmt.Sprintf("%d bytes, %s", len(l.Payload), d.Form)
	if d.Form == FormEnvelope {
		payload = fmt.Sprintf("%d bytes, a stream record (boxscore.stream.v1.Envelope, content type %q)", len(l.Payload), d.Envelope.GetContentType())
	} else if d.Form == FormRow {
		payload = fmt.Sprintf("%d bytes, the curated warehouse row (boxscore.warehouse.v1.BattingGameRow, protojson)", len(l.Payload))
	}
	line("payload", payload)
	if j.AcceptedAt != nil {
		line("accepted at", j.AcceptedAt.UTC().Format(time.RFC3339Nano))
	}
	keys := make([]string, 0, len(j.TraceContext))
	for k := range j.TraceContext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line(k, j.TraceContext[k])
	}
	switch {
	case d.Event != nil:
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, j.Event, "", "  "); err != nil {
			pretty.Write(j.Event)
		}
		fmt.Fprintf(&b, "\nevent (the ingest API's JSON):\n%s\n", pretty.String())
	case len(l.Payload) > 0:
		fmt.Fprintf(&b, "\nthe payload cannot be decoded: %v\n\n%s", d.Err, hexDump(l.Payload))
	default:
		b.WriteString("\nno payload stored\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
