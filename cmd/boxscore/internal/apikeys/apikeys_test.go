package apikeys_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/apikeys"
	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestNewWritesTheKeyAndA0600KeysFileTheGatewayCanLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".run") // missing: made
	cmd := apikeys.NewCommand{Producer: "local", Scopes: []string{"ingest", "retract"}, Sources: []string{"replay"},
		EventsPerSecond: 2000, KeysFile: filepath.Join(dir, "api-keys.yaml"), KeyOut: filepath.Join(dir, "api-key")}
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(&stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cmd.KeyOut)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(data))
	if !apikey.LooksLikeKey(key) {
		t.Fatalf("key file holds %q, not a key", data)
	}
	for _, p := range []string{cmd.KeysFile, cmd.KeyOut} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s has mode %o, want 0600", p, m)
		}
	}
	f, err := apikey.Load(cmd.KeysFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) != 1 {
		t.Fatalf("%d entries, want 1", len(f.Keys))
	}
	e := f.Keys[0]
	if e.Producer != "local" || e.SHA256 != apikey.Hash(key) || !slices.Equal(e.Scopes, []string{"ingest", "retract"}) ||
		!slices.Equal(e.Sources, []string{"replay"}) || e.Quota == nil || e.Quota.EventsPerSecond != 2000 || e.Quota.BytesPerSecond != 0 {
		t.Fatalf("entry %+v", e)
	}
	// The key is written once, to its file: neither stdout nor the advice carries it, nor
	// does the keys file.
	raw, _ := os.ReadFile(cmd.KeysFile)
	for name, text := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String(), "keys file": string(raw)} {
		if strings.Contains(text, key) {
			t.Errorf("%s holds the key", name)
		}
	}
	if !strings.Contains(stderr.String(), "export BOXSCORE_API_KEY=$(cat "+cmd.KeyOut+")") {
		t.Errorf("stderr does not say how to use the key:\n%s", stderr.String())
	}

	// A second key for the same producer (rotation) is appended, printed on stdout alone.
	second := apikeys.NewCommand{Producer: "local", Scopes: []string{"ingest"}, KeysFile: cmd.KeysFile}
	stdout.Reset()
	if err := second.Run(&stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	printed := strings.TrimSuffix(stdout.String(), "\n")
	if !apikey.LooksLikeKey(printed) || printed == key {
		t.Fatalf("stdout %q, want a new key alone", stdout.String())
	}
	f, err = apikey.Load(cmd.KeysFile)
	if err != nil || len(f.Keys) != 2 || f.Keys[1].SHA256 != apikey.Hash(printed) || f.Keys[1].Quota != nil {
		t.Fatalf("after the second key: %+v, %v", f, err)
	}
	if m := mode(t, cmd.KeysFile); m != 0o600 {
		t.Errorf("keys file mode %o after the append, want 0600", m)
	}
}

func TestNewNeverOverwritesAKeyFileNorStoresAHashOfAKeyNobodyHolds(t *testing.T) {
	dir := t.TempDir()
	keyOut := filepath.Join(dir, "api-key")
	if err := os.WriteFile(keyOut, []byte("bsk_the-only-copy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := apikeys.NewCommand{Producer: "local", Scopes: []string{"ingest"}, KeysFile: filepath.Join(dir, "keys.yaml"), KeyOut: keyOut}
	if err := cmd.Run(&bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("err = %v, want a refusal to overwrite", err)
	}
	if data, _ := os.ReadFile(keyOut); string(data) != "bsk_the-only-copy\n" {
		t.Fatalf("the existing key file was changed to %q", data)
	}
	if _, err := os.Stat(cmd.KeysFile); !os.IsNotExist(err) {
		t.Fatalf("the keys file was written (%v): it would hold the hash of a key nobody has", err)
	}

	// A keys file that does not parse takes no entry, and the new key file is removed.
	if err := os.WriteFile(cmd.KeysFile, []byte("keys:\n  - producer: x\n    scope: [ingest]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.KeyOut = filepath.Join(dir, "new-key")
	if err := cmd.Run(&bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("appending to an invalid keys file succeeded")
	}
	if _, err := os.Stat(cmd.KeyOut); !os.IsNotExist(err) {
		t.Fatalf("the key file of a key that was not stored remains (%v)", err)
	}
}

func TestNewRefusesBadFlagsBeforeMakingAnything(t *testing.T) {
	for name, cmd := range map[string]apikeys.NewCommand{
		"producer":  {Producer: "Not Valid", Scopes: []string{"ingest"}, KeysFile: "k.yaml"},
		"scope":     {Producer: "p", Scopes: []string{"admin"}, KeysFile: "k.yaml"},
		"no scope":  {Producer: "p", KeysFile: "k.yaml"},
		"quota":     {Producer: "p", Scopes: []string{"ingest"}, EventsPerSecond: -1, KeysFile: "k.yaml"},
		"keys file": {Producer: "p", Scopes: []string{"ingest"}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := cmd.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestHashPrintsWhatTheKeysFileStores(t *testing.T) {
	key := apikey.Generate()
	var stdout bytes.Buffer
	if err := (&apikeys.HashCommand{}).Run(strings.NewReader(key+"\n"), &stdout); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(stdout.String()); got != apikey.Hash(key) || strings.Contains(stdout.String(), key) {
		t.Fatalf("printed %q, want only %s", stdout.String(), apikey.Hash(key))
	}
	err := (&apikeys.HashCommand{}).Run(strings.NewReader("hunter2"), &stdout)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v, want a refusal that does not echo the input", err)
	}
}
