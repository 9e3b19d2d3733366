// Package auth authenticates the gateway's producers: API keys from a keys file (see
// pkg/apikey) and OIDC/JWT bearer tokens, either or both. The result is a Principal: the
// producer recorded on every event it sends, the scopes it holds, the sources it may send and
// its quota. With neither method configured, every caller is the Anonymous principal.
package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

// AnonymousProducer is the producer of every request when authentication is off.
const AnonymousProducer = "anonymous"

// Methods of authentication, as recorded in logs and metrics.
const (
	MethodAnonymous = "anonymous"
	MethodAPIKey    = "api_key"
	MethodOIDC      = "oidc"
)

// Principal is an authenticated caller.
type Principal struct {
	// Producer is the name recorded on the caller's events.
	Producer string
	// Method is how the caller was authenticated (Method* constants).
	Method string
	// Scopes lists what the caller may send (apikey.Scope* values).
	Scopes []string
	// Sources, when not empty, lists the only `source` values the caller may send.
	Sources []string
	// Quota is the caller's own quota; zero fields take the gateway's defaults.
	Quota apikey.Quota
}

// Anonymous is the principal of every request when authentication is off: it may send
// anything, within the default quota.
var Anonymous = &Principal{Producer: AnonymousProducer, Method: MethodAnonymous, Scopes: apikey.KnownScopes}

// HasScope reports whether the principal holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// OwnsSource reports whether the principal may send events of source.
func (p *Principal) OwnsSource(source string) bool {
	return len(p.Sources) == 0 || slices.Contains(p.Sources, source)
}

// Errors of Authenticate. Neither says why a credential was refused beyond absent/invalid,
// so an answer never reveals whether a key exists.
var (
	// ErrNoCredential: the request carries no bearer token.
	ErrNoCredential = errors.New("no credential: send Authorization: Bearer <API key or token>")
	// ErrBadCredential: the token is not a known key nor a valid token for this gateway.
	ErrBadCredential = errors.New("the credential is not valid")
)

// Authenticator checks bearer tokens against the configured methods.
type Authenticator struct {
	keys *KeyStore     // nil: API keys off
	oidc *OIDCVerifier // nil: OIDC off
}

// New returns an authenticator over keys and/or oidc; with both nil, authentication is off.
func New(keys *KeyStore, oidc *OIDCVerifier) *Authenticator {
	return &Authenticator{keys: keys, oidc: oidc}
}

// Enabled reports whether callers must authenticate.
func (a *Authenticator) Enabled() bool { return a != nil && (a.keys != nil || a.oidc != nil) }

// Authenticate returns the principal of the Authorization value (an HTTP header or gRPC
// metadata value, "Bearer <token>"). With authentication off it returns Anonymous whatever
// is sent. Errors wrap ErrNoCredential or ErrBadCredential; the error's text never holds the
// token.
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (*Principal, error) {
	if !a.Enabled() {
		return Anonymous, nil
	}
	token, ok := bearerToken(authorization)
	if !ok {
		return nil, ErrNoCredential
	}
	if apikey.LooksLikeKey(token) {
		if a.keys == nil {
			return nil, ErrBadCredential
		}
		return a.keys.Lookup(token)
	}
	if a.oidc == nil {
		return nil, ErrBadCredential
	}
	return a.oidc.Verify(ctx, token)
}

// AuthenticateKey is Authenticate for API keys only, never a network call: the gRPC
// server's tap (which runs on the transport's goroutine) refuses bad keys with it before any
// message is read. ok is false when the token is not an API key and Authenticate must decide.
func (a *Authenticator) AuthenticateKey(authorization string) (p *Principal, ok bool, err error) {
	if !a.Enabled() {
		return Anonymous, true, nil
	}
	token, found := bearerToken(authorization)
	if !found {
		return nil, true, ErrNoCredential
	}
	if !apikey.LooksLikeKey(token) {
		if a.oidc == nil {
			return nil, true, ErrBadCredential
		}
		return nil, false, nil
	}
	if a.keys == nil {
		return nil, true, ErrBadCredential
	}
	p, err = a.keys.Lookup(token)
	return p, true, err
}

// bearerToken takes the token out of "Bearer <token>" (the scheme is case-insensitive).
func bearerToken(authorization string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(authorization), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
