package replay

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
)

// How many malformed rows and examples of each rejection the summary lists; stderr has
// every malformed row.
const (
	maxMalformedListed = 10
	maxExamplesListed  = 3
)

// summary is what the replay did, printed at the end.
type summary struct {
	source, gateway, fromDate string

	rowsRead    int // data rows, malformed ones included
	rowsSkipped int // before --from-date
	malformed   []*gamelog.RowError

	days, daysSkipped   int
	firstDate, lastDate string
	stoppedAt           string // the day a fatal error stopped the replay on

	sent, accepted, rejected, unknown int
	requests                          int
	rejections                        map[string]*rejectionGroup // by "field reason"
	elapsed                           time.Duration
}

type rejectionGroup struct {
	field, reason string
	count         int
	examples      []string
}

// record counts the outcome of one batch, and returns a line for each rejected event. res
// may be partial (after a fatal error) or nil.
func (s *summary) record(rows []gamelog.Row, res *ingestclient.Result) []string {
	if res == nil {
		return nil
	}
	var rejectedLines []string
	s.requests += res.Requests
	for i, ev := range res.Events {
		s.sent++
		switch ev.Status {
		case ingestclient.StatusAccepted:
			s.accepted++
		case ingestclient.StatusRejected:
			s.rejected++
			r := rows[i]
			var why []string
			for _, v := range ev.Violations {
				why = append(why, v.String())
			}
			rejectedLines = append(rejectedLines, fmt.Sprintf("replay: rejected %s (%s, %s %s): %s",
				ev.EventID, r.PlayerName, r.GameDate, r.GameID, strings.Join(why, "; ")))
			seen := map[string]bool{}
			for _, v := range ev.Violations {
				key := v.Field + " " + v.Reason
				if seen[key] { // an event counts once per kind of violation
					continue
				}
				seen[key] = true
				g := s.rejections[key]
				if g == nil {
					g = &rejectionGroup{field: v.Field, reason: v.Reason}
					s.rejections[key] = g
				}
				g.count++
				if len(g.examples) < maxExamplesListed {
					g.examples = append(g.examples, fmt.Sprintf("%s (%s, %s %s): %s", ev.EventID, r.PlayerName, r.GameDate, r.GameID, v.Detail))
				}
			}
		default:
			s.unknown++
		}
	}
	return rejectedLines
}

// write prints the summary.
func (s *summary) write(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-15s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "replay of %s into %s\n", s.source, s.gateway)

	days := fmt.Sprintf("%d", s.days)
	if s.days > 0 {
		days += fmt.Sprintf(" (%s to %s)", s.firstDate, s.lastDate)
	}
	if s.fromDate != "" {
		days += fmt.Sprintf(", %d skipped before --from-date %s (%d rows)", s.daysSkipped, s.fromDate, s.rowsSkipped)
	}
	line("days", "%s", days)
	line("rows read", "%d", s.rowsRead)
	line("malformed rows", "%d", len(s.malformed))
	for i, e := range s.malformed {
		if i == maxMalformedListed {
			fmt.Fprintf(&b, "    ... and %d more (all are on stderr)\n", len(s.malformed)-maxMalformedListed)
			break
		}
		fmt.Fprintf(&b, "    %v\n", e)
	}
	line("sent", "%d (in %d requests)", s.sent, s.requests)
	line("accepted", "%d", s.accepted)
	line("rejected", "%d", s.rejected)
	groups := make([]*rejectionGroup, 0, len(s.rejections))
	for _, g := range s.rejections {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *rejectionGroup) int {
		if a.count != b.count {
			return b.count - a.count
		}
		return strings.Compare(a.field+a.reason, b.field+b.reason)
	})
	for _, g := range groups {
		field := g.field
		if field == "" {
			field = "(event)"
		}
		fmt.Fprintf(&b, "    %s %s: %d\n", field, g.reason, g.count)
		for _, ex := range g.examples {
			fmt.Fprintf(&b, "      %s\n", ex)
		}
	}
	if s.unknown > 0 {
		line("unknown", "%d (sent, not acknowledged before the replay stopped: resending them is safe)", s.unknown)
	}
	line("elapsed", "%s", s.elapsed.Round(time.Millisecond))
	if s.stoppedAt != "" {
		fmt.Fprintf(&b, "stopped on %s: fix the cause and resume with --from-date %s (events already sent are not added twice)\n", s.stoppedAt, s.stoppedAt)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
