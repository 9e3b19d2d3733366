package componenttest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/quota"
)

// issuer is an OIDC identity provider for tests: a discovery document and a JWKS served by
// httptest, and tokens signed with an RSA key made here.
type issuer struct {
	url    string
	mu     sync.Mutex
	signer jose.Signer
	jwks   jose.JSONWebKeySet
}

// rotate makes a new signing key with id kid and serves only it from the JWKS.
func (i *issuer) rotate(t *testing.T, kid string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.signer = signer
	i.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}}}
}

func startIssuer(t *testing.T) *issuer {
	t.Helper()
	iss := &issuer{}
	iss.rotate(t, "k1")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "jwks_uri": srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"authorization_endpoint": srv.URL + "/auth", "token_endpoint": srv.URL + "/token",
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		iss.mu.Lock()
		defer iss.mu.Unlock()
		_ = json.NewEncoder(w).Encode(iss.jwks)
	})
	iss.url = srv.URL
	return iss
}

// token signs claims, with iss, aud and a 10-minute validity unless claims override them.
func (i *issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	all := map[string]any{"iss": i.url, "aud": "boxscore", "iat": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix()}
	for k, v := range claims {
		all[k] = v
	}
	i.mu.Lock()
	signer := i.signer
	i.mu.Unlock()
	tok, err := jwt.Signed(signer).Claims(all).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// authGateway is a gateway with API keys (file at keysPath) and OIDC on.
type authGateway struct {
	*gateway
	keysPath string
	issuer   *issuer
}

func writeKeys(t *testing.T, path string, entries ...apikey.Entry) {
	t.Helper()
	_ = os.Remove(path)
	for _, e := range entries {
		if err := apikey.AppendKey(path, e); err != nil {
			t.Fatal(err)
		}
	}
	if len(entries) == 0 {
		if err := os.WriteFile(path, []byte("keys: []\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// newAuthGateway starts kinesalite, an issuer and a gateway that authenticates with the
// keys file and the issuer, with limiter as its quota (nil: none).
func newAuthGateway(t *testing.T, limiter *quota.Limiter, entries ...apikey.Entry) *authGateway {
	t.Helper()
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	iss := startIssuer(t)
	keysPath := filepath.Join(t.TempDir(), "keys.yaml")
	writeKeys(t, keysPath, entries...)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := auth.NewKeyStore(keysPath, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	watched := make(chan struct{})
	go func() { defer close(watched); _ = keys.Watch(ctx, 50*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-watched })
	verifier, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{Issuer: iss.url, Audience: "boxscore"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatewayOpts(t, kin.Endpoint, name, publishConfig(), gatewayOptions{auth: auth.New(keys, verifier), quota: limiter})
	g.kinesis = kin
	return &authGateway{gateway: g, keysPath: keysPath, issuer: iss}
}

// postAs posts a JSON array with the Authorization header (none when empty).
func (g *gateway) postAs(t *testing.T, authorization string, events []*statsv1.StatEvent) response {
	t.Helper()
	return g.postBody(t, authorization, testevents.JSONArray(t, events))
}

func (g *gateway) postBody(t *testing.T, authorization, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.httpURL+"/v1/stats", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/stats: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(data, &r.problem); err != nil {
			t.Fatalf("problem body: %v\n%s", err, data)
		}
	}
	return r
}

// putAs calls PutStats with the authorization metadata (none when empty).
func (g *gateway) putAs(t *testing.T, authorization string, events []*statsv1.StatEvent) (*ingestv1.PutStatsResponse, *status.Status) {
	t.Helper()
	ctx := t.Context()
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	resp, err := g.grpc.PutStats(ctx, &ingestv1.PutStatsRequest{Events: events})
	return resp, status.Convert(err)
}

func errorInfoReason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func retraction(mlbID int64, n int) *statsv1.StatEvent {
	ev := testevents.Valid(mlbID, n)
	ev.Batting = nil
	ev.Version = 7
	ev.Retraction = &statsv1.Retraction{Reason: "entered twice"}
	return ev
}

func TestAuthenticationOnBothPaths(t *testing.T) {
	demoKey, opsKey, goneKey := apikey.Generate(), apikey.Generate(), apikey.Generate()
	g := newAuthGateway(t, nil,
		apikey.Entry{Producer: "demo", SHA256: apikey.Hash(demoKey), Scopes: []string{apikey.ScopeIngest}, Sources: []string{"test"}},
		apikey.Entry{Producer: "ops", SHA256: apikey.Hash(opsKey), Scopes: []string{apikey.ScopeRetract}},
		apikey.Entry{Producer: "gone", SHA256: apikey.Hash(goneKey), Scopes: []string{apikey.ScopeIngest}},
	)
	iss := g.issuer
	ownSource := func() []*statsv1.StatEvent { return []*statsv1.StatEvent{testevents.Valid(200001, 1)} }
	otherSource := func() []*statsv1.StatEvent {
		ev := testevents.Valid(200002, 2)
		ev.Source = "someone-else"
		return []*statsv1.StatEvent{ev}
	}

	// The key "gone" works, then is removed from the file while the gateway runs.
	if r := g.postAs(t, "Bearer "+goneKey, ownSource()); r.status != http.StatusAccepted {
		t.Fatalf("the key before its removal: %d %s", r.status, r.body)
	}
	writeKeys(t, g.keysPath,
		apikey.Entry{Producer: "demo", SHA256: apikey.Hash(demoKey), Scopes: []string{apikey.ScopeIngest}, Sources: []string{"test"}},
		apikey.Entry{Producer: "ops", SHA256: apikey.Hash(opsKey), Scopes: []string{apikey.ScopeRetract}})
	waitFor(t, func() bool { return g.postAs(t, "Bearer "+goneKey, ownSource()).status == http.StatusUnauthorized })

	refused := []struct {
		name          string
		authorization string
		events        func() []*statsv1.StatEvent
		status        int
		code          codes.Code
	}{
		{"no credential", "", ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"not bearer", "Basic " + demoKey, ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"wrong key", "Bearer " + apikey.Generate(), ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"removed key", "Bearer " + goneKey, ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"garbage token", "Bearer not.a.jwt", ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"expired JWT", "Bearer " + iss.token(t, map[string]any{"sub": "idp-producer", "scope": "ingest",
			"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()}), ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"wrong-audience JWT", "Bearer " + iss.token(t, map[string]any{"sub": "idp-producer", "scope": "ingest", "aud": "someone-else"}),
			ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"wrong-issuer JWT", "Bearer " + iss.token(t, map[string]any{"sub": "idp-producer", "scope": "ingest", "iss": "https://evil.example"}),
			ownSource, http.StatusUnauthorized, codes.Unauthenticated},
		{"key without the ingest scope", "Bearer " + opsKey, ownSource, http.StatusForbidden, codes.PermissionDenied},
		{"key without the retract scope", "Bearer " + demoKey, func() []*statsv1.StatEvent { return []*statsv1.StatEvent{retraction(200003, 3)} },
			http.StatusForbidden, codes.PermissionDenied},
		{"source not owned", "Bearer " + demoKey, otherSource, http.StatusForbidden, codes.PermissionDenied},
		{"JWT without the ingest scope", "Bearer " + iss.token(t, map[string]any{"sub": "idp-producer", "scope": "retract"}),
			ownSource, http.StatusForbidden, codes.PermissionDenied},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			r := g.postAs(t, c.authorization, c.events())
			if r.status != c.status || r.problem.Status != c.status {
				t.Fatalf("HTTP %d %s, want %d", r.status, r.body, c.status)
			}
			if c.status == http.StatusUnauthorized {
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") || r.problem.Type != problemBase+"unauthenticated" {
					t.Errorf("401 with WWW-Authenticate %q, problem %+v", r.header.Get("WWW-Authenticate"), r.problem)
				}
				// Every refused credential gets the same answer: none reveals whether a key exists.
				if strings.Contains(string(r.body), "gone") || strings.Contains(r.problem.Detail, "removed") || strings.Contains(r.problem.Detail, "expired") {
					t.Errorf("the 401 says too much: %s", r.body)
				}
			} else if r.problem.Type != problemBase+"forbidden" || len(r.problem.Errors) == 0 {
				t.Errorf("403 problem %+v, want type forbidden naming the events", r.problem)
			}
			_, st := g.putAs(t, c.authorization, c.events())
			if st.Code() != c.code {
				t.Fatalf("gRPC %s %q, want %s", st.Code(), st.Message(), c.code)
			}
			if reason := errorInfoReason(st); (c.code == codes.Unauthenticated && reason != "UNAUTHENTICATED") || (c.code == codes.PermissionDenied && reason != "FORBIDDEN") {
				t.Errorf("ErrorInfo reason %q", reason)
			}
		})
	}

	// Accepted: a key and a JWT, on both paths; the stream holds only these, each with its
	// producer in the envelope.
	jwtToken := iss.token(t, map[string]any{"sub": "idp-producer", "scope": "ingest retract"})
	before := len(g.readStream(t))
	want := map[string]string{}
	r := g.postAs(t, "Bearer "+demoKey, []*statsv1.StatEvent{testevents.Valid(300001, 1)})
	want[acceptedID(t, r)] = "demo"
	r = g.postAs(t, "Bearer "+jwtToken, []*statsv1.StatEvent{testevents.Valid(300002, 2)})
	want[acceptedID(t, r)] = "idp-producer"
	resp, st := g.putAs(t, "Bearer "+demoKey, []*statsv1.StatEvent{testevents.Valid(300003, 3)})
	if st.Code() != codes.OK {
		t.Fatalf("gRPC with a key: %s %q", st.Code(), st.Message())
	}
	want[resp.GetResults()[0].GetEventId()] = "demo"
	resp, st = g.putAs(t, "Bearer "+jwtToken, []*statsv1.StatEvent{retraction(300004, 4)})
	if st.Code() != codes.OK {
		t.Fatalf("gRPC with a JWT (a retraction): %s %q", st.Code(), st.Message())
	}
	want[resp.GetResults()[0].GetEventId()] = "idp-producer"
	r = g.postAs(t, "Bearer "+opsKey, []*statsv1.StatEvent{retraction(300005, 5)})
	want[acceptedID(t, r)] = "ops"

	inStream := g.readStream(t)
	if len(inStream) != before+len(want) {
		t.Errorf("the stream holds %d events, want %d: a refused request reached it", len(inStream), before+len(want))
	}
	for id, producer := range want {
		rec, ok := inStream[id]
		if !ok {
			t.Errorf("event %s is not in the stream", id)
			continue
		}
		if rec.Envelope.GetProducer() != producer {
			t.Errorf("event %s: envelope producer %q, want %q", id, rec.Envelope.GetProducer(), producer)
		}
	}
}

// The identity provider rotates its signing key: tokens of the new key are accepted without
// a restart (go-oidc refetches the JWKS on an unknown key id), those of the old one refused.
func TestOIDCKeyRotation(t *testing.T) {
	g := newAuthGateway(t, nil)
	claims := map[string]any{"sub": "idp-producer", "scope": "ingest"}
	old := g.issuer.token(t, claims)
	if r := g.postAs(t, "Bearer "+old, []*statsv1.StatEvent{testevents.Valid(310001, 1)}); r.status != http.StatusAccepted {
		t.Fatalf("before the rotation: %d %s", r.status, r.body)
	}
	g.issuer.rotate(t, "k2")
	if r := g.postAs(t, "Bearer "+g.issuer.token(t, claims), []*statsv1.StatEvent{testevents.Valid(310002, 2)}); r.status != http.StatusAccepted {
		t.Fatalf("a token of the new key: %d %s", r.status, r.body)
	}
	if _, st := g.putAs(t, "Bearer "+old, []*statsv1.StatEvent{testevents.Valid(310003, 3)}); st.Code() != codes.Unauthenticated {
		t.Fatalf("a token of the retired key: %s, want UNAUTHENTICATED", st.Code())
	}
}

func acceptedID(t *testing.T, r response) string {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d %s, want 202", r.status, r.body)
	}
	var body struct {
		Results []struct {
			EventID string `json:"eventId"`
		} `json:"results"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Results) != 1 {
		t.Fatalf("202 body %s: %v", r.body, err)
	}
	return body.Results[0].EventID
}

func TestAnonymousProducerWhenAuthIsOff(t *testing.T) {
	g := newGateway(t)
	r := g.post(t, "application/json", testevents.JSONArray(t, []*statsv1.StatEvent{testevents.Valid(400001, 1)}))
	id := acceptedID(t, r)
	if got := g.readStream(t)[id].Envelope.GetProducer(); got != auth.AnonymousProducer {
		t.Errorf("envelope producer %q, want %q", got, auth.AnonymousProducer)
	}
}

func TestOneProducerOverQuotaLeavesTheOthersAlone(t *testing.T) {
	aKey, bKey := apikey.Generate(), apikey.Generate()
	// A: 1 event/s with a burst of one 10-event request; B: the default, 1,000 events/s.
	limiter := quota.New(quota.Limits{EventsPerSecond: 1000, BytesPerSecond: 1 << 30}, 10, 5<<20, 100)
	g := newAuthGateway(t, limiter,
		apikey.Entry{Producer: "a", SHA256: apikey.Hash(aKey), Scopes: []string{apikey.ScopeIngest}, Quota: &apikey.Quota{EventsPerSecond: 1}},
		apikey.Entry{Producer: "b", SHA256: apikey.Hash(bKey), Scopes: []string{apikey.ScopeIngest}})
	batch := func(base int64) []*statsv1.StatEvent {
		events := make([]*statsv1.StatEvent, 5)
		for i := range events {
			events[i] = testevents.Valid(base+int64(i), i)
		}
		return events
	}
	// A's burst holds two 5-event requests; the third is over its quota, on both paths.
	for i := range 2 {
		if r := g.postAs(t, "Bearer "+aKey, batch(500000+int64(10*i))); r.status != http.StatusAccepted {
			t.Fatalf("A's request %d within its burst: %d %s", i, r.status, r.body)
		}
	}
	r := g.postAs(t, "Bearer "+aKey, batch(500100))
	if r.status != http.StatusTooManyRequests || r.problem.Type != problemBase+"quota-exceeded" || r.header.Get("Retry-After") == "" || r.problem.RetryAfterSeconds < 1 {
		t.Fatalf("A over quota: %d, Retry-After %q, %s; want 429 quota-exceeded with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	_, st := g.putAs(t, "Bearer "+aKey, batch(500200))
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if st.Code() != codes.ResourceExhausted || retry == nil || retry.GetRetryDelay().AsDuration() <= 0 || errorInfoReason(st) != "QUOTA_EXCEEDED" {
		t.Fatalf("A over quota on gRPC: %s %q %v; want RESOURCE_EXHAUSTED with RetryInfo", st.Code(), st.Message(), st.Details())
	}
	// Meanwhile B sends 20 requests of 5 events, on both paths, all accepted.
	for i := range 10 {
		if r := g.postAs(t, "Bearer "+bKey, batch(600000+int64(10*i))); r.status != http.StatusAccepted {
			t.Fatalf("B's request %d while A is over quota: %d %s", i, r.status, r.body)
		}
		if _, st := g.putAs(t, "Bearer "+bKey, batch(700000+int64(10*i))); st.Code() != codes.OK {
			t.Fatalf("B's gRPC request %d while A is over quota: %s %q", i, st.Code(), st.Message())
		}
	}
	// And A is still refused (its bucket refills at 1 event per second).
	if r := g.postAs(t, "Bearer "+aKey, batch(500300)); r.status != http.StatusTooManyRequests {
		t.Errorf("A after B's requests: %d, want still 429", r.status)
	}
}
