package extract

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// maxRejectionLines bounds the rejected events the summary lists one by one; the counts by
// reason cover them all.
const maxRejectionLines = 20

// PostSummary is what a --post run did with its events.
type PostSummary struct {
	Events   int // extracted
	Sent     int // handed to the gateway
	Accepted int
	Rejected int
	// Unsettled were sent but not acknowledged before the client gave up: they may or may
	// not be stored; posting again is safe, as event ids derive from (player, game, version).
	Unsettled int
	// RejectedByReason counts rejected events by violation reason (an event with two
	// reasons counts under both).
	RejectedByReason map[string]int
	// Rejections describes the first rejected events, one line each.
	Rejections []string
}

// post sends the rows' events to the gateway in batches of at most
// ingestclient.MaxBatchEvents and prints a summary on stdout. It fails when an event was
// rejected or could not be settled, after printing what happened.
func (c *Command) post(ctx context.Context, in *instruments, rows []gamelog.Row, what string, stdout, stderr io.Writer) error {
	key, err := c.Resolve(c.Gateway)
	if err != nil {
		return err
	}
	client := ingestclient.New(c.Gateway,
		key.Option(),
		ingestclient.WithHTTPClient(&http.Client{Transport: gatewayTransport(in)}),
		ingestclient.WithUserAgent(UserAgent()),
		ingestclient.WithRetryNotify(func(n ingestclient.RetryNotice) {
			fmt.Fprintf(stderr, "gateway: retrying in %s: %v\n", n.Wait.Round(time.Millisecond), n.Err)
		}))
	summary, sendErr := postRows(ctx, in, client, rows, c.batchEvents)
	sendErr = key.Explain(sendErr)
	summary.print(stdout, c.Gateway, what)
	if sendErr != nil {
		return fmt.Errorf("post to %s: %w", c.Gateway, sendErr)
	}
	if summary.Rejected > 0 {
		return fmt.Errorf("post to %s: the gateway rejected %d of %d events (see the summary)", c.Gateway, summary.Rejected, summary.Events)
	}
	return nil
}

// postRows sends the events in batches of batchEvents (ingestclient.MaxBatchEvents when 0)
// and stops at the first batch that fails. Each batch is a span, the parent of its HTTP
// requests (retries included), whose trace context goes to the gateway.
func postRows(ctx context.Context, in *instruments, client *ingestclient.Client, rows []gamelog.Row, batchEvents int) (PostSummary, error) {
	if batchEvents <= 0 || batchEvents > ingestclient.MaxBatchEvents {
		batchEvents = ingestclient.MaxBatchEvents
	}
	s := PostSummary{Events: len(rows), RejectedByReason: map[string]int{}}
	events := make([]*statsv1.StatEvent, len(rows))
	for i, r := range rows {
		events[i] = r.Event(Source)
	}
	for start := 0; start < len(events); start += batchEvents {
		end := min(start+batchEvents, len(events))
		if err := postBatch(ctx, in, client, rows[start:end], events[start:end], &s); err != nil {
			return s, fmt.Errorf("batch of events %d to %d: %w", start+1, end, err)
		}
	}
	return s, nil
}

// postBatch sends one batch in a span of its own and adds its outcome to s and to the
// lines_sent counter.
func postBatch(ctx context.Context, in *instruments, client *ingestclient.Client, rows []gamelog.Row, events []*statsv1.StatEvent, s *PostSummary) (err error) {
	ctx, span := in.tracer.Start(ctx, "post batch", trace.WithAttributes(attribute.Int(spanAttrEvents, len(events))))
	defer func() { endSpan(span, err) }()
	before := *s
	res, err := client.Send(ctx, events)
	s.Sent += len(events)
	if res != nil {
		for i, ev := range res.Events {
			s.add(rows[i], ev)
		}
	}
	accepted, rejected, unsettled := s.Accepted-before.Accepted, s.Rejected-before.Rejected, s.Unsettled-before.Unsettled
	span.SetAttributes(attribute.Int(spanAttrAccepted, accepted), attribute.Int(spanAttrRejected, rejected), attribute.Int(spanAttrUnsettled, unsettled))
	for outcome, n := range map[string]int{"accepted": accepted, "rejected": rejected, "unsettled": unsettled} {
		if n > 0 {
			in.linesSent.Add(ctx, int64(n), metric.WithAttributes(attribute.String(attrOutcome, outcome)))
		}
	}
	return err
}

func (s *PostSummary) add(row gamelog.Row, ev ingestclient.EventResult) {
	switch ev.Status {
	case ingestclient.StatusAccepted:
		s.Accepted++
	case ingestclient.StatusRejected:
		s.Rejected++
		reasons := map[string]bool{}
		for _, v := range ev.Violations {
			reasons[v.Reason] = true
		}
		for r := range reasons {
			s.RejectedByReason[r]++
		}
		if len(s.Rejections) < maxRejectionLines {
			s.Rejections = append(s.Rejections, fmt.Sprintf("%s %s (%d), game %s: %v",
				row.GameDate, row.PlayerName, row.PlayerID, row.GameID, ev.Violations))
		}
	default:
		s.Unsettled++
	}
}

func (s PostSummary) print(w io.Writer, gateway, what string) {
	fmt.Fprintf(w, "posted %s to %s\n", what, gateway)
	fmt.Fprintf(w, "  events     %d\n", s.Events)
	fmt.Fprintf(w, "  sent       %d\n", s.Sent)
	fmt.Fprintf(w, "  accepted   %d\n", s.Accepted)
	fmt.Fprintf(w, "  rejected   %d\n", s.Rejected)
	reasons := slices.SortedFunc(maps.Keys(s.RejectedByReason), func(a, b string) int {
		return cmp.Or(cmp.Compare(s.RejectedByReason[b], s.RejectedByReason[a]), cmp.Compare(a, b))
	})
	for _, r := range reasons {
		fmt.Fprintf(w, "    %-40s %d\n", r, s.RejectedByReason[r])
	}
	if s.Unsettled > 0 {
		fmt.Fprintf(w, "  unsettled  %d (sent, not acknowledged: posting again is safe)\n", s.Unsettled)
	}
	if notSent := s.Events - s.Sent; notSent > 0 {
		fmt.Fprintf(w, "  not sent   %d\n", notSent)
	}
	for _, line := range s.Rejections {
		fmt.Fprintf(w, "  rejected: %s\n", line)
	}
	if s.Rejected > len(s.Rejections) {
		fmt.Fprintf(w, "  (and %d more rejected)\n", s.Rejected-len(s.Rejections))
	}
}
