package credential_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
)

// local is a gateway on loopback, to which the local key file's key may be sent.
const local = "http://127.0.0.1:8080"

// parse parses args as a command embedding the flag does, with the environment as it is.
func parse(t *testing.T, dir string, args ...string) credential.Flags {
	t.Helper()
	var cli struct{ credential.Flags }
	parser, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(args); err != nil {
		t.Fatal(err)
	}
	cli.Dir = dir
	return cli.Flags
}

// repo makes a repository root (a .git directory) holding .run/api-key with content, and a
// subdirectory of it; it returns both.
func repo(t *testing.T, content string) (root, sub string) {
	t.Helper()
	root = t.TempDir()
	sub = filepath.Join(root, "cmd", "x")
	for _, d := range []string{filepath.Join(root, ".git"), filepath.Join(root, ".run"), sub} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if content != "" {
		if err := os.WriteFile(filepath.Join(root, credential.LocalKeyFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root, sub
}

func TestTheFlagWinsOverTheEnvironmentWhichWinsOverTheFile(t *testing.T) {
	root, _ := repo(t, "bsk_from-file\n")
	t.Setenv(credential.EnvVar, "bsk_from-env")

	key, err := parse(t, root, "--api-key", "bsk_from-flag").Resolve(local)
	if err != nil || key.Value != "bsk_from-flag" {
		t.Fatalf("flag, env and file: got %q (%v), want the flag's", key.Value, err)
	}
	key, err = parse(t, root).Resolve(local)
	if err != nil || key.Value != "bsk_from-env" {
		t.Fatalf("env and file: got %q (%v), want the environment's", key.Value, err)
	}
	t.Setenv(credential.EnvVar, "")
	key, err = parse(t, root).Resolve(local)
	want := filepath.Join(root, credential.LocalKeyFile)
	if err != nil || key.Value != "bsk_from-file" || key.Origin != want {
		t.Fatalf("file only: got %q from %q (%v), want bsk_from-file (newline trimmed) from %s", key.Value, key.Origin, err, want)
	}
}

func TestTheLocalFileIsFoundAtTheRepositoryRootFromASubdirectory(t *testing.T) {
	t.Setenv(credential.EnvVar, "")
	root, sub := repo(t, "bsk_root\n")
	key, err := parse(t, sub).Resolve(local)
	if err != nil || key.Value != "bsk_root" || key.Origin != filepath.Join(root, credential.LocalKeyFile) {
		t.Fatalf("got %q from %q (%v), want the root's key", key.Value, key.Origin, err)
	}
	// The working directory's own file comes first.
	if err := os.MkdirAll(filepath.Join(sub, ".run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, credential.LocalKeyFile), []byte("bsk_here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if key, err := parse(t, sub).Resolve(local); err != nil || key.Value != "bsk_here" {
		t.Fatalf("got %q (%v), want the working directory's key", key.Value, err)
	}
}

func TestNothingAboveTheRepositoryIsRead(t *testing.T) {
	t.Setenv(credential.EnvVar, "")
	outer := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outer, ".run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outer, credential.LocalKeyFile), []byte("bsk_outer"), 0o600); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(outer, "project")
	if err := os.MkdirAll(filepath.Join(inner, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := parse(t, inner).Resolve(local)
	if err != nil || key.Value != "" || key.Origin != "none" {
		t.Fatalf("got %q from %q (%v), want no key", key.Value, key.Origin, err)
	}
}

func TestAKeyThatCannotBeATokenIsRefusedWithoutRepeatingIt(t *testing.T) {
	t.Setenv(credential.EnvVar, "")
	root, _ := repo(t, "bsk_secret part\n")
	_, err := parse(t, root).Resolve(local)
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), credential.LocalKeyFile) {
		t.Fatalf("err = %v, want a refusal naming the file and not the key", err)
	}
	_, err = parse(t, root, "--api-key", "bsk_secret\r\nX-Evil: 1").Resolve(local)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v, want a refusal not repeating the key", err)
	}
	empty, _ := repo(t, "\n")
	if _, err := parse(t, empty).Resolve(local); err == nil {
		t.Fatal("an empty key file was accepted")
	}
}

func TestExplainNamesTheOriginOfARefusedKeyOnly(t *testing.T) {
	key := credential.Key{Value: "bsk_value", Origin: "/repo/.run/api-key"}
	refused := fmt.Errorf("send: %w", &ingestclient.ProblemError{StatusCode: http.StatusUnauthorized})
	got := key.Explain(refused)
	if !strings.Contains(got.Error(), "/repo/.run/api-key") || strings.Contains(got.Error(), "bsk_value") || !errors.Is(got, refused) {
		t.Fatalf("Explain(401) = %v", got)
	}
	other := errors.New("connection refused")
	if got := key.Explain(other); got.Error() != other.Error() || !errors.Is(got, other) {
		t.Fatalf("Explain(network error) = %v, want it unchanged", got)
	}
}

// The local stack's key goes to a gateway on this machine only; an explicit key goes anywhere.
func TestTheLocalKeyFileIsSentOnlyToALoopbackGateway(t *testing.T) {
	t.Setenv(credential.EnvVar, "")
	root, _ := repo(t, "bsk_local\n")
	for gateway, want := range map[string]string{
		"http://localhost:8080":              "bsk_local",
		"http://[::1]:8080":                  "bsk_local",
		"http://127.0.0.2:8080":              "bsk_local",
		"https://ingest.example.com":         "",
		"http://10.0.0.5:8080":               "",
		"http://127.0.0.1.example.com:8080/": "",
		"::not a url":                        "",
	} {
		key, err := parse(t, root).Resolve(gateway)
		if err != nil || key.Value != want {
			t.Errorf("gateway %s: key %q (%v), want %q", gateway, key.Value, err, want)
		}
	}
	if key, err := parse(t, root, "--api-key", "bsk_explicit").Resolve("https://ingest.example.com"); err != nil || key.Value != "bsk_explicit" {
		t.Errorf("an explicit key for a remote gateway: %q (%v)", key.Value, err)
	}
}
