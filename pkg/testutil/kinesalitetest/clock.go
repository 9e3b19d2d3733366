package kinesalitetest

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// clockTimeout bounds waiting for server.js to acknowledge a clock command.
const clockTimeout = 10 * time.Second

// clockAnswer is server.js's acknowledgement of "advance MS".
var clockAnswer = regexp.MustCompile(`^clock advanced (\d+) ms offset (\d+) ms$`)

// AdvanceClock moves the process's clock d forward (whole milliseconds) and
// returns once kinesalite uses it: every request after it sees the later time.
// kinesalite reads its clock for new sequence numbers, iterator ages (an
// iterator lives five minutes: iterators taken before the move have expired
// after it if d is longer) and retention (a record whose sequence time is older
// than the stream's retention, 24 hours by default, is left out of GetRecords
// and deleted). Test only: it needs a process launched with
// Options.ClockControl. The clock never goes back; a restarted process keeps
// the advanced clock.
func (p *Process) AdvanceClock(t testing.TB, d time.Duration) {
	t.Helper()
	if err := p.advanceClock(d); err != nil {
		t.Fatalf("kinesalitetest: AdvanceClock(%s): %v", d, err)
	}
}

// ClockOffset is how far AdvanceClock has moved the process's clock ahead of
// the real one.
func (p *Process) ClockOffset() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.opts.clockOffsetMs) * time.Millisecond
}

func (p *Process) advanceClock(d time.Duration) error {
	if d < 0 {
		return errors.New("the clock only moves forward")
	}
	ms := d.Milliseconds()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.opts.ClockControl {
		return errors.New("the process was launched without Options.ClockControl")
	}
	r := p.cur
	if r == nil {
		return fmt.Errorf("kinesalite at %s is stopped", p.Endpoint)
	}
	// Drop a late answer to a command given up on earlier.
	for len(r.stdout.clock) > 0 {
		<-r.stdout.clock
	}
	if _, err := fmt.Fprintf(r.stdin, "advance %d\n", ms); err != nil {
		return fmt.Errorf("send the clock command: %w%s", err, r.stderr.suffix())
	}
	select {
	case line := <-r.stdout.clock:
		m := clockAnswer.FindStringSubmatch(line)
		if m == nil {
			return fmt.Errorf("kinesalite answered %q", line)
		}
		if m[1] != strconv.FormatInt(ms, 10) {
			return fmt.Errorf("kinesalite answered %q to advance %d", line, ms)
		}
		offset, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return fmt.Errorf("kinesalite answered %q: %w", line, err)
		}
		p.opts.clockOffsetMs = offset
		return nil
	case <-r.exited:
		return fmt.Errorf("kinesalite exited: %w%s", r.exitErr(), r.stderr.suffix())
	case <-time.After(clockTimeout):
		return fmt.Errorf("no answer from kinesalite within %s%s", clockTimeout, r.stderr.suffix())
	}
}
