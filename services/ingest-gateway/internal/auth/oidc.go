package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
)

// OIDCConfig configures bearer JWTs from an identity provider.
type OIDCConfig struct {
	// Issuer is the expected `iss`; its discovery document gives the JWKS URL unless JWKSURL
	// is set.
	Issuer string
	// Audience is the expected `aud`.
	Audience string
	// JWKSURL, when set, is used instead of discovery.
	JWKSURL string
	// ProducerClaim names the claim holding the producer (default `sub`).
	ProducerClaim string
	// ScopesClaim names the claim holding the scopes: a space-separated string or an array
	// (default `scope`).
	ScopesClaim string
}

// fetchTimeout bounds a discovery or JWKS request to the identity provider.
const fetchTimeout = 10 * time.Second

// OIDCVerifier verifies JWTs: signature against the issuer's JWKS (fetched, cached and
// refetched on an unknown key id by go-oidc, so key rotation needs nothing here), issuer,
// audience, expiry and not-before.
type OIDCVerifier struct {
	cfg      OIDCConfig
	verifier *oidc.IDTokenVerifier
	logger   *slog.Logger
}

// NewOIDCVerifier prepares verification: with JWKSURL it only needs the issuer name;
// otherwise it fetches the issuer's discovery document now (an unreachable issuer is a
// start-up error, not a stream of 401s later).
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig, logger *slog.Logger) (*OIDCVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("oidc: issuer and audience are required")
	}
	if cfg.ProducerClaim == "" {
		cfg.ProducerClaim = "sub"
	}
	if cfg.ScopesClaim == "" {
		cfg.ScopesClaim = "scope"
	}
	vcfg := &oidc.Config{ClientID: cfg.Audience}
	// The key set outlives this call and fetches keys with the context it is given: not
	// the start-up context, and with a client whose timeout bounds how long a request can
	// wait for a slow identity provider.
	ctx = oidc.ClientContext(context.WithoutCancel(ctx), &http.Client{Timeout: fetchTimeout})
	var verifier *oidc.IDTokenVerifier
	if cfg.JWKSURL != "" {
		keys := oidc.NewRemoteKeySet(ctx, cfg.JWKSURL)
		verifier = oidc.NewVerifier(cfg.Issuer, keys, vcfg)
	} else {
		provider, err := oidc.NewProvider(ctx, cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("oidc discovery of %s: %w", cfg.Issuer, err)
		}
		verifier = provider.Verifier(vcfg)
	}
	return &OIDCVerifier{cfg: cfg, verifier: verifier, logger: logger}, nil
}

// Verify returns the principal of a JWT. The producer claim must be a valid producer name
// (it becomes a column value and a metric label); only known scopes are kept.
func (v *OIDCVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	idToken, err := v.verifier.Verify(ctx, token)
	if err != nil {
		// Why (expired, wrong audience, unknown key) helps the operator, not the caller.
		v.logger.InfoContext(ctx, "bearer token refused", "error", err)
		return nil, ErrBadCredential
	}
	var claims map[string]any
	if err := idToken.Claims(&claims); err != nil {
		v.logger.InfoContext(ctx, "bearer token refused: claims unreadable", "error", err)
		return nil, ErrBadCredential
	}
	producer, _ := claims[v.cfg.ProducerClaim].(string)
	if !apikey.ValidProducer(producer) {
		v.logger.WarnContext(ctx, "bearer token refused: its producer claim is not a valid producer name",
			"claim", v.cfg.ProducerClaim, "pattern", "[a-z0-9][a-z0-9._-]{0,62}")
		return nil, ErrBadCredential
	}
	return &Principal{Producer: producer, Method: MethodOIDC, Scopes: scopesOf(claims[v.cfg.ScopesClaim])}, nil
}

// scopesOf reads a scopes claim: a space-separated string (OAuth 2 `scope`) or an array of
// strings (`scp` of some providers), keeping the scopes the gateway knows.
func scopesOf(claim any) []string {
	var raw []string
	switch c := claim.(type) {
	case string:
		raw = strings.Fields(c)
	case []any:
		for _, s := range c {
			if str, ok := s.(string); ok {
				raw = append(raw, str)
			}
		}
	}
	var scopes []string
	for _, s := range raw {
		if slices.Contains(apikey.KnownScopes, s) && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes
}
