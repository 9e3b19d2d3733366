// Package apikey is the producer API key format of the ingest gateway and the file that
// stores the keys: a key is "bsk_" followed by the unpadded base64url encoding of 32 random
// bytes, and the keys file (YAML) holds only the lowercase hex SHA-256 of each whole key, with
// the producer it authenticates, the scopes it grants, the sources it may send and its quota.
//
// The gateway loads the file (Load) and compares a presented key's Hash against every stored
// hash; the boxscore CLI makes keys (Generate) and appends their entries (AppendKey). The
// file never holds a key, so reading it does not let anyone send data.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Prefix starts every key, so that a leaked key is recognisable (secret scanners, logs) and a
// JWT is never mistaken for one.
const Prefix = "bsk_"

// keyBytes is the entropy of a key: 256 bits, beyond any guessing.
const keyBytes = 32

// keyLength is the length of a whole key string: the prefix and 43 base64url characters.
var keyLength = len(Prefix) + base64.RawURLEncoding.EncodedLen(keyBytes)

// Scopes a key may grant.
const (
	// ScopeIngest allows sending stat lines.
	ScopeIngest = "ingest"
	// ScopeRetract allows sending retractions (tombstones that remove a line).
	ScopeRetract = "retract"
)

// KnownScopes lists every scope, in the order the docs give them.
var KnownScopes = []string{ScopeIngest, ScopeRetract}

// producerPattern is what a producer name may look like: it becomes a metric label, a column
// value and a log field, so it is short, lowercase and free of anything that needs escaping.
var producerPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// hashPattern is a lowercase hex SHA-256.
var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Generate makes a new random key. The caller shows it once and stores only Hash(key).
func Generate() string {
	var raw [keyBytes]byte
	// crypto/rand.Read never fails (since Go 1.24 it crashes the program rather than return
	// weak randomness), so its error is always nil.
	_, _ = rand.Read(raw[:])
	return Prefix + base64.RawURLEncoding.EncodeToString(raw[:])
}

// Hash is the lowercase hex SHA-256 of the whole key string, as the keys file stores it.
// A key is 256 random bits, so a fast unsalted hash is enough: nothing can be guessed from it.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// LooksLikeKey reports whether s has the shape of a key (prefix, length, alphabet). It says
// nothing about whether the key exists; the gateway uses it to tell keys from JWTs.
func LooksLikeKey(s string) bool {
	if len(s) != keyLength || !strings.HasPrefix(s, Prefix) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s[len(Prefix):])
	return err == nil
}

// ValidProducer reports whether name may be a producer name.
func ValidProducer(name string) bool { return producerPattern.MatchString(name) }

// File is the content of a keys file.
type File struct {
	Keys []Entry `json:"keys"`
}

// Entry is one key: its hash and what it grants. Several entries may name one producer (key
// rotation: the new key is added, clients move, the old entry is removed).
type Entry struct {
	// Producer is the name the gateway records on every event the key sends.
	Producer string `json:"producer"`
	// SHA256 is Hash(key): the lowercase hex SHA-256 of the whole key string.
	SHA256 string `json:"sha256"`
	// Scopes lists what the key may send (ScopeIngest, ScopeRetract); at least one.
	Scopes []string `json:"scopes"`
	// Sources, when not empty, lists the only `source` values the key may send.
	Sources []string `json:"sources,omitempty"`
	// Quota overrides the gateway's default quota for this key's producer.
	Quota *Quota `json:"quota,omitempty"`
}

// Quota is a producer's sustained rate. Zero fields take the gateway's defaults.
type Quota struct {
	EventsPerSecond float64 `json:"eventsPerSecond,omitempty"`
	BytesPerSecond  float64 `json:"bytesPerSecond,omitempty"`
}

// HasScope reports whether the entry grants scope.
func (e *Entry) HasScope(scope string) bool { return slices.Contains(e.Scopes, scope) }

// Parse reads a keys file strictly: unknown fields, duplicate hashes and invalid values are
// errors, so that a typo (say `scope:` for `scopes:`) is refused instead of granting nothing
// or everything silently.
func Parse(data []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parse keys file: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Load reads and parses the keys file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keys file: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Validate checks every entry and that no hash appears twice (which would make a key's
// producer depend on the order of the file). Errors name entries by position, never by hash.
func (f *File) Validate() error {
	var errs []error
	seen := make(map[string]int, len(f.Keys))
	for i := range f.Keys {
		e := &f.Keys[i]
		if err := e.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		if first, dup := seen[e.SHA256]; dup {
			errs = append(errs, fmt.Errorf("keys[%d]: the same sha256 as keys[%d]", i, first))
			continue
		}
		seen[e.SHA256] = i
	}
	return errors.Join(errs...)
}

// Validate checks one entry.
func (e *Entry) Validate() error {
	var errs []error
	if !ValidProducer(e.Producer) {
		errs = append(errs, fmt.Errorf("producer %q must match %s", e.Producer, producerPattern))
	}
	if !hashPattern.MatchString(e.SHA256) {
		errs = append(errs, errors.New("sha256 must be 64 lowercase hex characters (the SHA-256 of the whole key)"))
	}
	if len(e.Scopes) == 0 {
		errs = append(errs, fmt.Errorf("scopes must list at least one of %v", KnownScopes))
	}
	for _, s := range e.Scopes {
		if !slices.Contains(KnownScopes, s) {
			errs = append(errs, fmt.Errorf("unknown scope %q (known: %v)", s, KnownScopes))
		}
	}
	for _, s := range e.Sources {
		if strings.TrimSpace(s) == "" || strings.TrimSpace(s) != s {
			errs = append(errs, fmt.Errorf("source %q must be non-empty without surrounding spaces", s))
		}
	}
	if q := e.Quota; q != nil {
		if !positiveOrUnset(q.EventsPerSecond) {
			errs = append(errs, fmt.Errorf("quota.eventsPerSecond %v must be positive", q.EventsPerSecond))
		}
		if !positiveOrUnset(q.BytesPerSecond) {
			errs = append(errs, fmt.Errorf("quota.bytesPerSecond %v must be positive", q.BytesPerSecond))
		}
	}
	return errors.Join(errs...)
}

func positiveOrUnset(v float64) bool {
	return v == 0 || (v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v))
}

// AppendKey adds entry to the keys file at path, creating the file when it does not exist.
// The file is rewritten whole through a temporary file and a rename, with mode 0600, so a
// reader (the gateway's reload) sees either the old or the new file, never half of one. A
// file that is not valid is left untouched and reported.
func AppendKey(path string, entry Entry) error {
	if err := entry.Validate(); err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	var f File
	switch data, err := os.ReadFile(path); {
	case err == nil:
		existing, err := Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		f = *existing
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read keys file: %w", err)
	}
	f.Keys = append(f.Keys, entry)
	if err := f.Validate(); err != nil {
		return fmt.Errorf("%s with the new key: %w", path, err)
	}
	data, err := yaml.Marshal(&f)
	if err != nil {
		return fmt.Errorf("encode keys file: %w", err)
	}
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) error {
	// CreateTemp makes the file with mode 0600, so the content is never readable by others,
	// not even before the rename.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write keys file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write keys file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write keys file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write keys file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write keys file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write keys file: %w", err)
	}
	return nil
}
