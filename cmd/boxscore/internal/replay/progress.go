package replay

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
)

// progress reports the replay as it goes. retry may be called from the ingest client.
type progress interface {
	dayStarted(n int, date string)
	eventsDone(s *summary)
	dayDone(n int, date string, s *summary)
	retry(n ingestclient.RetryNotice)
	// warn reports something the user must see (a rejected event) without stopping.
	warn(msg string)
	finish()
}

// logEvery is the longest silence of the log progress.
const logEvery = 5 * time.Second

func newProgress(mode string, w io.Writer, totalDays, totalEvents int) progress {
	if mode == "auto" {
		mode = "log"
		if isTerminal(w) {
			mode = "bar"
		}
	}
	switch mode {
	case "bar":
		return newBarProgress(w, totalDays, totalEvents)
	case "log":
		return &logProgress{w: w, totalDays: totalDays, totalEvents: totalEvents, start: time.Now(), last: time.Now()}
	default:
		return noProgress{w: w}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// noProgress reports no progress, only warnings.
type noProgress struct{ w io.Writer }

func (noProgress) dayStarted(int, string)         {}
func (noProgress) eventsDone(*summary)            {}
func (noProgress) dayDone(int, string, *summary)  {}
func (noProgress) retry(ingestclient.RetryNotice) {}
func (noProgress) finish()                        {}
func (p noProgress) warn(msg string)              { _, _ = fmt.Fprintln(p.w, msg) }

// logProgress writes a line every 10 % of the days, and at least every logEvery.
type logProgress struct {
	mu                     sync.Mutex
	w                      io.Writer
	totalDays, totalEvents int
	start, last            time.Time
	nextTenth              int // the next tenth of the days to log at, 1..10
}

func (p *logProgress) dayStarted(int, string) {}
func (p *logProgress) eventsDone(*summary)    {}

func (p *logProgress) dayDone(n int, date string, s *summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	due := time.Since(p.last) >= logEvery
	for p.nextTenth <= 10 && n*10 >= p.nextTenth*p.totalDays {
		p.nextTenth++
		due = true
	}
	if !due {
		return
	}
	p.last = time.Now()
	rate := float64(s.sent) / max(time.Since(p.start).Seconds(), 1e-3)
	// A write error on the progress stream must not stop the replay; the summary on stdout
	// is what counts.
	_, _ = fmt.Fprintf(p.w, "replay: day %d/%d (%s): %d/%d events sent, %d accepted, %d rejected, %.1f events/s\n",
		n, p.totalDays, date, s.sent, p.totalEvents, s.accepted, s.rejected, rate)
}

func (p *logProgress) retry(n ingestclient.RetryNotice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "replay: %v; retrying in %s\n", n.Err, n.Wait.Round(time.Millisecond))
}

func (p *logProgress) warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintln(p.w, msg)
}

func (p *logProgress) finish() {}

// barProgress draws a bar of the events, described with the day.
type barProgress struct {
	mu        sync.Mutex
	w         io.Writer
	bar       *progressbar.ProgressBar
	totalDays int
	day       string
}

func newBarProgress(w io.Writer, totalDays, totalEvents int) *barProgress {
	bar := progressbar.NewOptions(totalEvents,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("day 0/%d", totalDays)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
	)
	return &barProgress{w: w, bar: bar, totalDays: totalDays}
}

func (p *barProgress) eventsDone(s *summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Set(s.sent) // drawing errors are the terminal's; the summary still prints
}

func (p *barProgress) dayStarted(n int, date string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.day = fmt.Sprintf("day %d/%d %s", n, p.totalDays, date)
	p.bar.Describe(p.day)
}

func (p *barProgress) dayDone(int, string, *summary) {}

func (p *barProgress) retry(n ingestclient.RetryNotice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Describe(fmt.Sprintf("%s: retrying in %s", p.day, n.Wait.Round(time.Millisecond)))
}

func (p *barProgress) warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Clear() // the line goes above the bar, which is drawn again on the next update
	_, _ = fmt.Fprintln(p.w, msg)
}

func (p *barProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.bar.IsFinished() { // stopped early: leave the bar where it stopped
		_ = p.bar.Exit()
	}
	_, _ = fmt.Fprintln(p.w) // the summary on stdout starts on a line of its own
}
