package ingest

import (
	"sync"

	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
)

// OtherProducers is the producer label of OIDC producers beyond the tracked number, and of
// requests refused before a producer was known.
const (
	OtherProducers   = "other"
	UnknownProducer  = "unknown"
	maxOIDCProducers = 100
)

// producerLabels bounds the producer label of metrics: producers of API keys come from the
// keys file (an operator's list) and anonymous is one; producers from OIDC tokens come from
// an identity provider and are tracked up to maxOIDCProducers, the rest counted as "other".
type producerLabels struct {
	mu   sync.Mutex
	oidc map[string]struct{}
}

func (l *producerLabels) label(p *auth.Principal) string {
	if p == nil {
		return UnknownProducer
	}
	if p.Method != auth.MethodOIDC {
		return p.Producer
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.oidc[p.Producer]; ok {
		return p.Producer
	}
	if len(l.oidc) >= maxOIDCProducers {
		return OtherProducers
	}
	if l.oidc == nil {
		l.oidc = map[string]struct{}{}
	}
	l.oidc[p.Producer] = struct{}{}
	return p.Producer
}
