// Package credential finds the API key the boxscore commands send to the ingest gateway, in
// one order for every command: the --api-key flag, else the BOXSCORE_API_KEY environment
// variable (kong fills the flag from it), else, as a local convenience, the file
// .run/api-key that `make up` writes, in the working directory or at the root of the
// repository the working directory is in. That file is the local stack's key, so it is sent
// only to a gateway on loopback (127.0.0.0/8, ::1, localhost), never to a remote one that a
// --gateway flag names from inside a checkout. No key at all is not an error: a local gateway
// without authentication needs none, and one with authentication answers 401, which the
// client reports with what to check.
//
// A key is a secret: it is sent only in the Authorization header, and nothing here prints it.
package credential

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
)

// LocalKeyFile is where `make up` keeps the local stack's key, relative to the repository.
const LocalKeyFile = ".run/api-key"

// EnvVar is the environment variable of the key.
const EnvVar = "BOXSCORE_API_KEY"

// Flags is the --api-key flag; commands embed it.
type Flags struct {
	APIKey string `name:"api-key" env:"BOXSCORE_API_KEY" placeholder:"KEY" help:"API key sent to the gateway as 'Authorization: Bearer KEY'. When neither the flag nor $BOXSCORE_API_KEY is set, and the gateway is on loopback: the file .run/api-key (written by 'make up') in the working directory or at the root of its repository."`
	// Dir is where to look for LocalKeyFile; empty: the working directory. Not a flag: tests
	// set it so that they never read a key of the checkout they run in.
	Dir string `kong:"-"`
}

// Key is a resolved key and where it came from.
type Key struct {
	// Value is the key; empty when none was found.
	Value string
	// Origin says where it came from, for messages: "--api-key or $BOXSCORE_API_KEY", a file
	// path, or "none".
	Origin string
}

// Resolve finds the key to send to the gateway at gatewayURL: the flag (or the environment,
// through kong), else, when the gateway is on loopback, LocalKeyFile in f.Dir (the working
// directory when empty) or at the root of the repository holding it. A key that cannot be a
// bearer token (spaces, control characters) is an error that does not repeat it.
func (f Flags) Resolve(gatewayURL string) (Key, error) {
	if f.APIKey != "" {
		key := strings.TrimSpace(f.APIKey)
		if err := check(key); err != nil {
			return Key{}, fmt.Errorf("--api-key (or $%s): %w", EnvVar, err)
		}
		return Key{Value: key, Origin: "--api-key or $" + EnvVar}, nil
	}
	if !isLoopbackURL(gatewayURL) {
		return Key{Origin: "none"}, nil
	}
	dir := f.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return Key{}, fmt.Errorf("look for %s: %w", LocalKeyFile, err)
		}
		dir = wd
	}
	for _, path := range localKeyPaths(dir) {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return Key{}, fmt.Errorf("read the API key: %w", err)
		}
		key := strings.TrimSpace(string(data))
		if err := check(key); err != nil {
			return Key{}, fmt.Errorf("the API key in %s: %w", path, err)
		}
		return Key{Value: key, Origin: path}, nil
	}
	return Key{Origin: "none"}, nil
}

// isLoopbackURL reports whether the URL's host is on this machine: localhost or a loopback
// address.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// localKeyPaths lists where the local key may be: dir first, then the root of the git
// repository holding dir (the first ancestor with a .git entry), when it is another
// directory. Nothing above the repository is searched: a key found there would belong to
// something else.
func localKeyPaths(dir string) []string {
	if dir == "" {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	paths := []string{filepath.Join(abs, LocalKeyFile)}
	for d := abs; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			if d != abs {
				paths = append(paths, filepath.Join(d, LocalKeyFile))
			}
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return paths
}

// check refuses what cannot travel as a bearer token; the error never contains the key.
func check(key string) error {
	if key == "" {
		return errors.New("the key is empty")
	}
	for _, r := range key {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII {
			return errors.New("the key holds spaces, control or non-ASCII characters; a key is one token, such as bsk_ followed by 43 letters, digits, '-' or '_'")
		}
	}
	return nil
}

// Explain adds where the key came from to the error of a 401 or 403, so that it says which
// key to look at (its origin, never its value). Other errors are returned as they are.
func (k Key) Explain(err error) error {
	var pe *ingestclient.ProblemError
	if k.Value == "" || !errors.As(err, &pe) || (pe.StatusCode != http.StatusUnauthorized && pe.StatusCode != http.StatusForbidden) {
		return err
	}
	return fmt.Errorf("%w (API key from %s)", err, k.Origin)
}

// Option is the ingest client's option that sends the key; none when there is no key.
func (k Key) Option() ingestclient.Option { return ingestclient.WithAPIKey(k.Value) }
