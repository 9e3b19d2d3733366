package tlsreload_test

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/tlsreload"
	"github.com/boxscore-dev/boxscore/pkg/tlsreload/tlstest"
)

// secretVolume lays files out as the kubelet does for a mounted Secret: a timestamped
// directory with the data, a "..data" symlink to it, and one symlink per key through
// "..data". An update writes a new directory and swaps "..data" with a rename.
type secretVolume struct {
	t   *testing.T
	dir string
	gen int
}

func (v *secretVolume) publish(files map[string][]byte) {
	v.t.Helper()
	v.gen++
	data := filepath.Join(v.dir, "..gen"+string(rune('0'+v.gen)))
	if err := os.Mkdir(data, 0o700); err != nil {
		v.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(data, name), content, 0o600); err != nil {
			v.t.Fatal(err)
		}
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				v.t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(data), tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
}

func issue(t *testing.T, ca *tlstest.CA, cn string) map[string][]byte {
	t.Helper()
	cert, key, err := ca.Issue(cn, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": ca.PEM()}
}

func TestReloadFollowsAKubernetesSecretUpdate(t *testing.T) {
	ca, err := tlstest.NewCA("boxscore")
	if err != nil {
		t.Fatal(err)
	}
	v := &secretVolume{t: t, dir: t.TempDir()}
	v.publish(issue(t, ca, "loader"))
	var log bytes.Buffer
	r, err := tlsreload.New(tlsreload.Files{
		Cert: filepath.Join(v.dir, "tls.crt"), Key: filepath.Join(v.dir, "tls.key"), CA: filepath.Join(v.dir, "ca.crt"),
	}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Identity(); got != "loader" {
		t.Fatalf("Identity = %q, want loader", got)
	}

	// Renewed by cert-manager: same CA, a new certificate (here with another name, to see it).
	v.publish(issue(t, ca, "loader-renewed"))
	if got := r.Identity(); got != "loader" {
		t.Errorf("Identity right after the update = %q: files are looked at most once per %s", got, tlsreload.CheckInterval)
	}
	time.Sleep(tlsreload.CheckInterval + 100*time.Millisecond)
	if got := r.Identity(); got != "loader-renewed" {
		t.Fatalf("Identity after the Secret update = %q, want loader-renewed", got)
	}
	if r.ClientConfig().RootCAs == nil {
		t.Error("ClientConfig carries no CA pool")
	}

	// A key that does not match the certificate (a Secret written by hand, half updated):
	// the previous pair stays, the failure is logged once.
	broken := issue(t, ca, "loader-broken")
	broken["tls.key"] = issue(t, ca, "other")["tls.key"]
	v.publish(broken)
	for range 3 {
		time.Sleep(tlsreload.CheckInterval + 100*time.Millisecond)
		if got := r.Identity(); got != "loader-renewed" {
			t.Fatalf("Identity with a mismatched key = %q, want the last good loader-renewed", got)
		}
	}
	if n := strings.Count(log.String(), "cannot be loaded"); n != 1 {
		t.Errorf("the failed reload is logged %d times, want once:\n%s", n, log.String())
	}
}

func TestNewRefusesIncompleteOrInvalidFiles(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := tlsreload.New(tlsreload.Files{Cert: "a", Key: "b"}, logger); err == nil {
		t.Error("New without a CA file succeeded")
	}
	dir := t.TempDir()
	ca, err := tlstest.NewCA("boxscore")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.Write(dir, "loader", []byte("no certificate here"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsreload.New(files, logger); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("New with an empty CA bundle = %v, want an error", err)
	}
}
