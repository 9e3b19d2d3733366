package auth

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER   abc  ": "abc", " Bearer abc": "abc",
		"": "", "Bearer": "", "Bearer ": "", "Basic abc": "", "abc": "",
	} {
		got, ok := bearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %t; want %q", in, got, ok, want)
		}
	}
}

func TestScopesOf(t *testing.T) {
	for _, c := range []struct {
		claim any
		want  []string
	}{
		{"ingest retract", []string{"ingest", "retract"}},
		{"openid ingest ingest", []string{"ingest"}},
		{[]any{"retract", 7, "admin"}, []string{"retract"}},
		{nil, nil},
		{42.0, nil},
	} {
		if got := scopesOf(c.claim); !slices.Equal(got, c.want) {
			t.Errorf("scopesOf(%v) = %v, want %v", c.claim, got, c.want)
		}
	}
}

func TestKeyStoreReloadsAndKeepsTheLastGoodKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	k1, k2 := apikey.Generate(), apikey.Generate()
	if err := apikey.AppendKey(path, apikey.Entry{Producer: "one", SHA256: apikey.Hash(k1), Scopes: []string{apikey.ScopeIngest},
		Quota: &apikey.Quota{EventsPerSecond: 5}}); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	store, err := NewKeyStore(path, discard(), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	a := New(store, nil)
	p, err := a.Authenticate(t.Context(), "Bearer "+k1)
	if err != nil || p.Producer != "one" || p.Method != MethodAPIKey || p.Quota.EventsPerSecond != 5 || !p.HasScope(apikey.ScopeIngest) {
		t.Fatalf("k1: %+v, %v", p, err)
	}
	if _, err := a.Authenticate(t.Context(), "Bearer "+k2); !errors.Is(err, ErrBadCredential) {
		t.Fatalf("unknown k2: %v, want ErrBadCredential", err)
	}
	if _, err := a.Authenticate(t.Context(), ""); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("no header: %v, want ErrNoCredential", err)
	}

	// Rotation: k2 added, k1 removed.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := apikey.AppendKey(path, apikey.Entry{Producer: "one", SHA256: apikey.Hash(k2), Scopes: []string{apikey.ScopeIngest}}); err != nil {
		t.Fatal(err)
	}
	if changed, err := store.Reload(); !changed || err != nil {
		t.Fatalf("reload after a change: %t, %v", changed, err)
	}
	if changed, err := store.Reload(); changed || err != nil {
		t.Fatalf("reload without a change: %t, %v", changed, err)
	}
	if _, err := a.Authenticate(t.Context(), "Bearer "+k1); !errors.Is(err, ErrBadCredential) {
		t.Errorf("removed k1: %v, want ErrBadCredential", err)
	}
	if p, err := a.Authenticate(t.Context(), "Bearer "+k2); err != nil || p.Producer != "one" {
		t.Errorf("added k2: %+v, %v", p, err)
	}

	// A broken file keeps k2 working.
	if err := os.WriteFile(path, []byte("keys: [{producer: BAD}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Reload(); err == nil {
		t.Fatal("a broken file reloaded without an error")
	}
	if p, err := a.Authenticate(t.Context(), "Bearer "+k2); err != nil || p.Producer != "one" {
		t.Errorf("k2 after a broken file: %+v, %v; want the last good keys kept", p, err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) == 0 {
		t.Error("no key metrics recorded")
	}
}

func TestAuthOffIsAnonymousAndJWTNeedsOIDC(t *testing.T) {
	var off *Authenticator
	if p, err := off.Authenticate(t.Context(), "Bearer whatever"); err != nil || p != Anonymous {
		t.Errorf("auth off: %+v, %v; want Anonymous", p, err)
	}
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := NewKeyStore(path, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := New(store, nil)
	if _, err := a.Authenticate(t.Context(), "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"); !errors.Is(err, ErrBadCredential) {
		t.Errorf("a JWT without OIDC: %v, want ErrBadCredential", err)
	}
	if _, known, err := a.AuthenticateKey("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"); !known || !errors.Is(err, ErrBadCredential) {
		t.Errorf("AuthenticateKey of a JWT without OIDC: %t, %v", known, err)
	}
}
