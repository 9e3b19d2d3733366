package server

import (
	"context"
	"errors"
	"time"
)

// PublicReason is a readiness failure's text that is safe to show on /readyz (to anyone
// who reaches the admin port): a few words chosen by the check, such as "stream not
// active" or "schema at version 9, want 10". A check returns it wrapped around the
// detailed error, e.g. fmt.Errorf("%w: %w", server.PublicReason("stream not found"), err);
// the detail goes to the log only.
func PublicReason(reason string) error { return &publicReason{reason: reason} }

type publicReason struct{ reason string }

func (p *publicReason) Error() string { return p.reason }

// checkFailure is a failing readiness check: its name and its whole error.
type checkFailure struct {
	name string
	err  error
}

func (f *checkFailure) Error() string { return f.name + ": " + f.err.Error() }
func (f *checkFailure) Unwrap() error { return f.err }

// publicText is what /readyz shows of a readiness error: the check's name and its public
// reason, or a generic one.
func publicText(err error) string {
	reason := "unavailable (see logs)"
	var p *publicReason
	switch {
	case errors.As(err, &p):
		reason = p.reason
	case errors.Is(err, context.DeadlineExceeded):
		reason = "timed out (see logs)"
	}
	var f *checkFailure
	if errors.As(err, &f) {
		return f.name + ": " + reason
	}
	return reason
}

// loggedFailure is the last failure of a check that was logged, and when.
type loggedFailure struct {
	text string
	at   time.Time
}

// readinessLogEvery is how often a failure that lasts unchanged is logged again.
const readinessLogEvery = time.Minute

// noteReadiness logs a check's failure when it starts, when its text changes and once per
// readinessLogEvery while it lasts, and its recovery once.
func (s *Server) noteReadiness(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, failing := s.notReady[name]
	if err == nil {
		if failing {
			delete(s.notReady, name)
			s.logger.Info("readiness check passes again", "check", name)
		}
		return
	}
	now := time.Now()
	if failing && last.text == err.Error() && now.Sub(last.at) < readinessLogEvery {
		return
	}
	s.notReady[name] = loggedFailure{text: err.Error(), at: now}
	s.logger.Warn("readiness check fails", "check", name, "error", err)
}
