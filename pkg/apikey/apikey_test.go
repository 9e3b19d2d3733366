package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateMakesDistinctWellFormedKeys(t *testing.T) {
	a, b := Generate(), Generate()
	if a == b {
		t.Fatalf("two keys are equal: %q", a)
	}
	for _, k := range []string{a, b} {
		if !strings.HasPrefix(k, Prefix) || len(k) != 47 || !LooksLikeKey(k) {
			t.Errorf("key %q is not bsk_ + 43 base64url characters", k)
		}
	}
	if LooksLikeKey("eyJhbGciOiJSUzI1NiJ9.e30.sig") || LooksLikeKey(Prefix+strings.Repeat("!", 43)) {
		t.Error("a JWT or a key with bad characters looks like a key")
	}
}

func TestHashIsHexSHA256OfTheWholeKey(t *testing.T) {
	key := "bsk_example"
	sum := sha256.Sum256([]byte(key))
	if got, want := Hash(key), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
}

const validFile = `
keys:
  - producer: demo
    sha256: "%s"
    scopes: [ingest]
    sources: [replay]
    quota:
      eventsPerSecond: 2000
      bytesPerSecond: 4000000
  - producer: ops
    sha256: "%s"
    scopes: [ingest, retract]
`

func TestParseValidFile(t *testing.T) {
	h1, h2 := Hash(Generate()), Hash(Generate())
	f, err := Parse(fmt.Appendf(nil, validFile, h1, h2))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) != 2 {
		t.Fatalf("got %d keys", len(f.Keys))
	}
	demo := f.Keys[0]
	if demo.Producer != "demo" || demo.SHA256 != h1 || !demo.HasScope(ScopeIngest) || demo.HasScope(ScopeRetract) ||
		len(demo.Sources) != 1 || demo.Quota == nil || demo.Quota.EventsPerSecond != 2000 || demo.Quota.BytesPerSecond != 4e6 {
		t.Errorf("demo entry = %+v", demo)
	}
	if ops := f.Keys[1]; !ops.HasScope(ScopeRetract) || ops.Quota != nil {
		t.Errorf("ops entry = %+v", ops)
	}
}

func TestParseRefusesBadFiles(t *testing.T) {
	h := Hash("k")
	entry := func(fields string) string { return "keys:\n  - " + fields + "\n" }
	for name, data := range map[string]string{
		"unknown field":       entry(`producer: demo` + "\n    sha256: " + h + "\n    scope: [ingest]"),
		"unknown top field":   "key: []\n",
		"bad producer":        entry("producer: Demo\n    sha256: " + h + "\n    scopes: [ingest]"),
		"long producer":       entry("producer: " + strings.Repeat("a", 64) + "\n    sha256: " + h + "\n    scopes: [ingest]"),
		"upper-case hash":     entry("producer: demo\n    sha256: " + strings.ToUpper(h) + "\n    scopes: [ingest]"),
		"short hash":          entry("producer: demo\n    sha256: abc\n    scopes: [ingest]"),
		"no scopes":           entry("producer: demo\n    sha256: " + h),
		"unknown scope":       entry("producer: demo\n    sha256: " + h + "\n    scopes: [admin]"),
		"negative quota":      entry("producer: demo\n    sha256: " + h + "\n    scopes: [ingest]\n    quota: {eventsPerSecond: -1}"),
		"blank source":        entry("producer: demo\n    sha256: " + h + "\n    scopes: [ingest]\n    sources: [' ']"),
		"duplicate hash":      entry("producer: a\n    sha256: "+h+"\n    scopes: [ingest]") + "  - producer: b\n    sha256: " + h + "\n    scopes: [ingest]\n",
		"not yaml":            "keys: [",
		"scopes not a list":   entry("producer: demo\n    sha256: " + h + "\n    scopes: ingest"),
		"quota of wrong type": entry("producer: demo\n    sha256: " + h + "\n    scopes: [ingest]\n    quota: {bytesPerSecond: lots}"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(data)); err == nil {
				t.Fatalf("accepted:\n%s", data)
			} else if strings.Contains(err.Error(), h) {
				t.Errorf("error reveals a hash: %v", err)
			}
		})
	}
}

func TestAppendKeyCreatesPrivateFileAndKeepsEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	k1, k2 := Generate(), Generate()
	if err := AppendKey(path, Entry{Producer: "demo", SHA256: Hash(k1), Scopes: []string{ScopeIngest}}); err != nil {
		t.Fatal(err)
	}
	if err := AppendKey(path, Entry{Producer: "demo", SHA256: Hash(k2), Scopes: []string{ScopeIngest, ScopeRetract},
		Quota: &Quota{EventsPerSecond: 10}}); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %o, want 600", perm)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) != 2 || f.Keys[0].SHA256 != Hash(k1) || f.Keys[1].SHA256 != Hash(k2) || f.Keys[1].Quota.EventsPerSecond != 10 {
		t.Fatalf("file after two appends: %+v", f.Keys)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), k1) || strings.Contains(string(data), k2) {
		t.Fatal("the file holds a key, not only its hash")
	}
	// A duplicate is refused and the file is left as it was.
	if err := AppendKey(path, Entry{Producer: "other", SHA256: Hash(k1), Scopes: []string{ScopeIngest}}); err == nil {
		t.Fatal("a duplicate hash was appended")
	}
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Fatal("a refused append changed the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestAppendKeyRefusesInvalidEntryAndCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := AppendKey(path, Entry{Producer: "demo", SHA256: "nothex", Scopes: []string{ScopeIngest}}); err == nil {
		t.Fatal("an invalid entry was appended")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a refused append created the file")
	}
	if err := os.WriteFile(path, []byte("keys: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AppendKey(path, Entry{Producer: "demo", SHA256: Hash("x"), Scopes: []string{ScopeIngest}}); err == nil {
		t.Fatal("appended to a corrupt file")
	}
}
