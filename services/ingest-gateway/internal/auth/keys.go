package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

// KeyStore holds the API keys of a keys file and reloads them when the file changes. The
// file is polled (its content hashed) rather than watched: a Kubernetes Secret volume
// changes by swapping a symlink, which a poll follows without special cases, and the file is
// small. A file that fails to load keeps the last good keys, with an error logged and
// counted (boxscore.ingest.api_keys.reloads{outcome="error"}).
type KeyStore struct {
	path   string
	logger *slog.Logger

	keys atomic.Pointer[keySet]

	mu       sync.Mutex // serialises reloads
	lastSum  [sha256.Size]byte
	reloads  metric.Int64Counter
	keyCount metric.Int64Gauge
}

// keySet is one loaded file: every entry's hash as bytes, for constant-time comparison.
type keySet struct {
	hashes     [][]byte
	principals []*Principal
}

// NewKeyStore loads the keys file at path; a file that does not load is an error (the
// gateway does not start without its keys). A nil meter records nothing.
func NewKeyStore(path string, logger *slog.Logger, meter metric.Meter) (*KeyStore, error) {
	if meter == nil {
		meter = noop.Meter{}
	}
	s := &KeyStore{path: path, logger: logger}
	var err1, err2 error
	s.reloads, err1 = meter.Int64Counter("boxscore.ingest.api_keys.reloads",
		metric.WithDescription("Loads of the API keys file after it changed, by outcome (ok, error: the last good keys stay in use)."))
	s.keyCount, err2 = meter.Int64Gauge("boxscore.ingest.api_keys.keys",
		metric.WithDescription("API keys in use (entries of the keys file last loaded)."))
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("api key metrics: %w %w", err1, err2)
	}
	changed, err := s.Reload()
	if err != nil {
		return nil, err
	}
	if !changed {
		return nil, fmt.Errorf("api keys file %s: not loaded", path)
	}
	return s, nil
}

// Reload reads the file and, if its content changed and it is valid, swaps the keys in.
// It reports whether the keys changed; an error leaves the last good keys in place.
func (s *KeyStore) Reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, fmt.Errorf("api keys file: %w", err)
	}
	sum := sha256.Sum256(data)
	if s.keys.Load() != nil && sum == s.lastSum {
		return false, nil
	}
	f, err := apikey.Parse(data)
	if err != nil {
		return false, fmt.Errorf("api keys file %s: %w", s.path, err)
	}
	set := &keySet{hashes: make([][]byte, len(f.Keys)), principals: make([]*Principal, len(f.Keys))}
	for i, e := range f.Keys {
		h, err := hex.DecodeString(e.SHA256)
		if err != nil { // Parse checked it is 64 hex characters
			return false, fmt.Errorf("api keys file %s: keys[%d]: %w", s.path, i, err)
		}
		set.hashes[i] = h
		p := &Principal{Producer: e.Producer, Method: MethodAPIKey, Scopes: e.Scopes, Sources: e.Sources}
		if e.Quota != nil {
			p.Quota = *e.Quota
		}
		set.principals[i] = p
	}
	s.keys.Store(set)
	s.lastSum = sum
	s.keyCount.Record(context.Background(), int64(len(set.hashes)))
	return true, nil
}

// Watch reloads the file every interval until ctx ends.
func (s *KeyStore) Watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := s.Reload()
		switch {
		case err != nil:
			s.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "error")))
			s.logger.ErrorContext(ctx, "api keys file not reloaded: the last good keys stay in use", "path", s.path, "error", err)
		case changed:
			s.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "ok")))
			s.logger.InfoContext(ctx, "api keys file reloaded", "path", s.path, "keys", len(s.keys.Load().hashes))
		}
	}
}

// Producers lists the producers of the keys in use, for bounded metric labels.
func (s *KeyStore) Producers() []string {
	set := s.keys.Load()
	out := make([]string, 0, len(set.principals))
	for _, p := range set.principals {
		out = append(out, p.Producer)
	}
	return out
}

// Lookup returns the principal of key. It hashes the key and compares the hash with every
// stored hash in constant time, without stopping at a match, so the time taken says nothing
// about which keys exist or how close a guess came.
func (s *KeyStore) Lookup(key string) (*Principal, error) {
	sum := sha256.Sum256([]byte(key))
	set := s.keys.Load()
	found := -1
	for i, h := range set.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, ErrBadCredential
	}
	return set.principals[found], nil
}
