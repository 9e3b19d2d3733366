// Package apikeys is `boxscore apikey`: it makes producer API keys for the ingest gateway and
// hashes keys kept elsewhere. The gateway's keys file (pkg/apikey) holds only each key's
// SHA-256, so `new` shows the key exactly once (or writes it to a 0600 file) and keeps
// nothing else of it; it never logs it.
package apikeys

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

// NewCommand is `boxscore apikey new`.
type NewCommand struct {
	Producer        string   `name:"producer" required:"" help:"Producer the key authenticates, recorded on every event it sends ([a-z0-9][a-z0-9._-]{0,62})."`
	Scopes          []string `name:"scopes" default:"ingest" sep:"," help:"What the key may send: ingest (stat lines), retract (retractions); comma-separated."`
	Sources         []string `name:"sources" sep:"," help:"The only source values the key may send; comma-separated. Empty: any."`
	EventsPerSecond float64  `name:"events-per-second" placeholder:"N" help:"The producer's quota in events per second. 0: the gateway's --default-events-per-second."`
	BytesPerSecond  float64  `name:"bytes-per-second" placeholder:"N" help:"The producer's quota in bytes per second. 0: the gateway's --default-bytes-per-second."`
	KeysFile        string   `name:"keys-file" required:"" env:"BOXSCORE_API_KEYS_FILE" placeholder:"PATH" help:"The gateway's keys file (YAML of hashes) to append to; created with mode 0600 when missing."`
	KeyOut          string   `name:"key-out" placeholder:"PATH" help:"Write the key to this new file (mode 0600) instead of printing it."`
}

// Help is the long help of `apikey new`.
func (c *NewCommand) Help() string {
	return `Makes a new API key (bsk_ and 43 random base64url characters) and appends the SHA-256 of
it, with the producer, scopes, sources and quota, to the gateway's keys file. The gateway
reloads the file when it changes: the key works within seconds, without a restart.

The key itself is shown once: on stdout, alone on its line (so KEY=$(boxscore apikey new
...) captures it), or written to --key-out with mode 0600 (never overwriting a file). How to
use it goes to stderr. Only its hash is kept: a lost key cannot be recovered; make another
and remove the old entry from the keys file.

Several keys may name one producer: to rotate, make a new key for the producer, move its
clients, then delete the old entry.`
}

// Validate checks the flags before anything is made.
func (c *NewCommand) Validate() error {
	_, err := c.entry("")
	return err
}

// entry is the keys-file entry of a key of hash sha.
func (c *NewCommand) entry(sha string) (apikey.Entry, error) {
	scopes := trimAll(c.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	e := apikey.Entry{Producer: strings.TrimSpace(c.Producer), SHA256: sha, Scopes: scopes, Sources: trimAll(c.Sources)}
	if c.EventsPerSecond != 0 || c.BytesPerSecond != 0 {
		e.Quota = &apikey.Quota{EventsPerSecond: c.EventsPerSecond, BytesPerSecond: c.BytesPerSecond}
	}
	if sha == "" {
		// Check everything but the hash, which does not exist yet.
		e.SHA256 = strings.Repeat("0", 64)
	}
	if err := e.Validate(); err != nil {
		return apikey.Entry{}, err
	}
	if strings.TrimSpace(c.KeysFile) == "" {
		return apikey.Entry{}, errors.New("--keys-file is required")
	}
	return e, nil
}

func trimAll(values []string) []string {
	var out []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Run makes the key, writes it to --key-out or stdout, and appends its entry to the keys file.
func (c *NewCommand) Run(stdout, stderr io.Writer) error {
	key := apikey.Generate()
	entry, err := c.entry(apikey.Hash(key))
	if err != nil {
		return err
	}
	if err := ensureDir(c.KeysFile); err != nil {
		return err
	}
	// The key file first, exclusively: if the keys file cannot take the entry, the key file is
	// removed again, and no hash is ever stored of a key nobody holds.
	if c.KeyOut != "" {
		if err := writeKey(c.KeyOut, key); err != nil {
			return err
		}
	}
	if err := apikey.AppendKey(c.KeysFile, entry); err != nil {
		if c.KeyOut != "" {
			_ = os.Remove(c.KeyOut)
		}
		return fmt.Errorf("append to the keys file: %w", err)
	}
	if c.KeyOut == "" {
		if _, err := fmt.Fprintln(stdout, key); err != nil {
			return fmt.Errorf("print the key: %w", err)
		}
	}
	return c.explain(stderr)
}

// explain tells how to use the key, without the key.
func (c *NewCommand) explain(stderr io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "boxscore: new API key for producer %q (scopes %s", c.Producer, strings.Join(trimAll(c.Scopes), ","))
	if sources := trimAll(c.Sources); len(sources) > 0 {
		fmt.Fprintf(&b, "; sources %s", strings.Join(sources, ","))
	}
	fmt.Fprintf(&b, "); its SHA-256 is appended to %s.\n", c.KeysFile)
	where := "the key printed above is shown only this once: keep it in a secret store"
	use := "export BOXSCORE_API_KEY=<the key>"
	if c.KeyOut != "" {
		where = "the key is in " + c.KeyOut + " (mode 0600)"
		use = "export BOXSCORE_API_KEY=$(cat " + c.KeyOut + ")"
	}
	fmt.Fprintf(&b, "%s. Use it:\n  %s\n  curl -H \"Authorization: Bearer $BOXSCORE_API_KEY\" ... /v1/stats   (boxscore replay, extract --post, retract and dlq replay read $BOXSCORE_API_KEY)\n", where, use)
	fmt.Fprintf(&b, "A gateway started with --api-keys-file %s takes it within seconds, without a restart.\n", c.KeysFile)
	if _, err := io.WriteString(stderr, b.String()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// ensureDir makes the directory of path (mode 0700) when it is missing.
func ensureDir(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("make the directory of %s: %w", path, err)
	}
	return nil
}

// writeKey writes key to a new file of mode 0600; an existing file is never replaced, since
// it may hold the only copy of another key.
func writeKey(path, key string) error {
	if err := ensureDir(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--key-out %s exists: it may hold another key; choose a new path or remove it", path)
	}
	if err != nil {
		return fmt.Errorf("write the key: %w", err)
	}
	_, werr := f.WriteString(key + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write the key to %s: %w", path, err)
	}
	return nil
}

// HashCommand is `boxscore apikey hash`.
type HashCommand struct{}

// Help is the long help of `apikey hash`.
func (c *HashCommand) Help() string {
	return `Reads a key on stdin (its first line) and prints its SHA-256 as the keys file stores it,
for keys made and kept elsewhere (a secret manager):
  printf %s "$KEY" | boxscore apikey hash
The key is not echoed.`
}

// Run hashes the key read from stdin.
func (c *HashCommand) Run(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the key from stdin: %w", err)
	}
	key := strings.TrimSpace(line)
	if !apikey.LooksLikeKey(key) {
		return fmt.Errorf("stdin does not hold a key: a key is %s followed by 43 base64url characters (make one with 'boxscore apikey new')", apikey.Prefix)
	}
	if _, err := fmt.Fprintln(stdout, apikey.Hash(key)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
