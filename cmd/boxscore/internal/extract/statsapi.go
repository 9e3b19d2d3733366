// Package extract pulls a player's season game log from the MLB Stats API and turns it into
// game-log rows (package gamelog): a CSV file, or stat events for the ingest gateway.
//
// MLB data is © MLB Advanced Media, for personal, non-commercial use under its terms: fetch
// what you need, politely, and don't ship it in bulk.
package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
)

// DefaultBaseURL is the public MLB Stats API.
const DefaultBaseURL = "https://statsapi.mlb.com"

// GameTypeRegularSeason is the Stats API game type of regular-season games.
const GameTypeRegularSeason = "R"

// Defaults of a Client. A season's game log is about 200 KB; anything near maxBodyBytes is
// not a game log.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxAttempts    = 5
	DefaultMaxElapsedTime = 2 * time.Minute
	maxBodyBytes          = 16 << 20
	// DefaultCacheBytes bounds the in-run cache: a live feed is 1-2 MB, and a long backfill
	// must not keep them all.
	DefaultCacheBytes = 64 << 20
	bodySnippetBytes  = 200
)

// Client fetches game logs from the MLB Stats API. It is safe for concurrent use.
type Client struct {
	baseURL     string
	http        *http.Client
	userAgent   string
	maxAttempts uint
	maxElapsed  time.Duration
	newBackOff  func() backoff.BackOff
	onRetry     func(err error, wait time.Duration)
	// limiter paces every attempt (retries included); nil means unlimited.
	limiter *rate.Limiter
	// instruments trace and count the requests, and ExtractLeague's games.
	instruments *instruments
	// cache holds this run's answers by URL: answers at a timecode never change and are
	// served from it; others are revalidated with If-None-Match / If-Modified-Since.
	cacheMu    sync.Mutex
	cache      map[string]cachedAnswer
	cacheOrder []string // insertion order, for eviction
	cacheBytes int      // bytes of the bodies in cache
	cacheLimit int
}

// cachedAnswer is a 200 body with the validators the server sent with it.
type cachedAnswer struct {
	body         []byte
	etag         string
	lastModified string
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each HTTP attempt (not the whole call, which retries).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.http.Timeout = d } }

// WithBackOff sets the wait between attempts when the server gives no Retry-After; it is
// called once per GameLog call, as a BackOff keeps state. The default is exponential from
// 500 ms.
func WithBackOff(newBackOff func() backoff.BackOff) Option {
	return func(c *Client) { c.newBackOff = newBackOff }
}

// WithMaxAttempts bounds the attempts of one call, the first included.
func WithMaxAttempts(n uint) Option { return func(c *Client) { c.maxAttempts = n } }

// WithRateLimit paces the requests (every attempt, retries included) to perSecond on
// average with bursts of burst; perSecond <= 0 leaves them unpaced.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(c *Client) {
		if perSecond > 0 {
			c.limiter = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
		}
	}
}

// WithCacheBytes bounds the bodies the in-run cache keeps (default DefaultCacheBytes); the
// oldest are dropped first. 0 disables the cache.
func WithCacheBytes(n int) Option { return func(c *Client) { c.cacheLimit = max(n, 0) } }

// WithRetryNotify is called before each wait, with the error that caused it.
func WithRetryNotify(f func(err error, wait time.Duration)) Option {
	return func(c *Client) { c.onRetry = f }
}

// NewClient returns a client for the Stats API at baseURL (e.g. DefaultBaseURL).
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("MLB Stats API base URL %q is not an http(s) URL", baseURL)
	}
	in, err := newInstruments()
	if err != nil {
		return nil, err
	}
	c := &Client{
		baseURL:     strings.TrimRight(baseURL, "/"),
		http:        &http.Client{Timeout: DefaultTimeout, Transport: statsAPITransport(in)},
		instruments: in,
		userAgent:   UserAgent(),
		maxAttempts: DefaultMaxAttempts,
		maxElapsed:  DefaultMaxElapsedTime,
		newBackOff:  func() backoff.BackOff { return backoff.NewExponentialBackOff() },
		cache:       map[string]cachedAnswer{},
		cacheLimit:  DefaultCacheBytes,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// UserAgent names the project and its version to the Stats API, as MLB asks of clients.
func UserAgent() string {
	return "boxscore/" + buildinfo.String() + " (+https://github.com/boxscore-dev/boxscore)"
}

// GameLogResponse is the part of a stats?stats=gameLog response the extractor reads.
// Unknown fields are ignored.
type GameLogResponse struct {
	// Stats is nil when the response has no "stats" member at all, which is not a game log;
	// an empty list is a player without games.
	Stats *[]StatGroup `json:"stats"`
}

// StatGroup is one (type, group) block of a stats response.
type StatGroup struct {
	Type   DisplayName `json:"type"`
	Group  DisplayName `json:"group"`
	Splits []Split     `json:"splits"`
}

// DisplayName is the {"displayName": ...} object the API names types and groups with.
type DisplayName struct {
	DisplayName string `json:"displayName"`
}

// Split is one game of a game log.
type Split struct {
	Season   string      `json:"season"`
	Date     string      `json:"date"`
	GameType string      `json:"gameType"`
	IsHome   *bool       `json:"isHome"`
	Team     Club        `json:"team"`
	Opponent Club        `json:"opponent"`
	Player   Person      `json:"player"`
	Game     GameRef     `json:"game"`
	Stat     HittingStat `json:"stat"`
}

// Club is a team as a split names it.
type Club struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// Person is a player as a split names him.
type Person struct {
	ID       int64  `json:"id"`
	FullName string `json:"fullName"`
}

// GameRef identifies the game of a split. GameNumber is 1 for a single game and for the
// first game of a doubleheader, 2 for the second.
type GameRef struct {
	GamePk     int64 `json:"gamePk"`
	GameNumber int   `json:"gameNumber"`
}

// HittingStat holds the per-game counts of a hitting split. They are pointers so that a
// missing count is told apart from a zero: it is an error, not a zero. The rate fields
// (avg, obp, ...) are season-to-date and not read.
type HittingStat struct {
	PlateAppearances     *int `json:"plateAppearances"`
	AtBats               *int `json:"atBats"`
	Runs                 *int `json:"runs"`
	Hits                 *int `json:"hits"`
	Doubles              *int `json:"doubles"`
	Triples              *int `json:"triples"`
	HomeRuns             *int `json:"homeRuns"`
	RBI                  *int `json:"rbi"`
	BaseOnBalls          *int `json:"baseOnBalls"`
	IntentionalWalks     *int `json:"intentionalWalks"`
	StrikeOuts           *int `json:"strikeOuts"`
	HitByPitch           *int `json:"hitByPitch"`
	SacBunts             *int `json:"sacBunts"`
	SacFlies             *int `json:"sacFlies"`
	StolenBases          *int `json:"stolenBases"`
	CaughtStealing       *int `json:"caughtStealing"`
	GroundIntoDoublePlay *int `json:"groundIntoDoublePlay"`
	TotalBases           *int `json:"totalBases"` // optional in the game-log CSV
}

// StatusError is an HTTP answer other than 200.
type StatusError struct {
	URL        string
	StatusCode int
	Body       string        // the start of the body, for the message
	RetryAfter time.Duration // from the Retry-After header, 0 when absent
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("GET %s: HTTP %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (Retry-After %s)", e.RetryAfter)
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Unwrap hands backoff the server's Retry-After, so the next attempt waits that long.
func (e *StatusError) Unwrap() error {
	if e.RetryAfter > 0 {
		return &backoff.RetryAfterError{Duration: e.RetryAfter}
	}
	return nil
}

// Retryable reports whether the status may pass: rate limiting and server errors.
func (e *StatusError) Retryable() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// GameLog fetches the hitting game log of one player for one season and game type ("R"),
// retrying rate limiting, server errors and network errors. It returns every split of
// the gameLog/hitting blocks, as the API sent them (unfiltered); none for a player who did
// not play. Every error names the player and the season.
func (c *Client) GameLog(ctx context.Context, playerID int64, season int, gameType string) ([]Split, error) {
	endpoint, err := c.gameLogURL(playerID, season, gameType)
	if err != nil {
		return nil, fmt.Errorf("player %d, season %d: %w", playerID, season, err)
	}
	body, err := c.fetch(ctx, endpoint, false, fmt.Sprintf("player %d, season %d", playerID, season))
	if err != nil {
		return nil, fmt.Errorf("player %d, season %d: game log: %w", playerID, season, err)
	}
	splits, err := parseGameLog(body)
	if err != nil {
		return nil, fmt.Errorf("player %d, season %d: GET %s: %w", playerID, season, endpoint, err)
	}
	return splits, nil
}

// fetch GETs endpoint with retries (429, 5xx, network errors; exponential back-off with
// jitter or the server's Retry-After) and returns the 200 body. immutable says the answer
// can never change (a snapshot at a timecode): a cached one is returned without a request.
// Other cached answers are revalidated with their ETag / Last-Modified, and a 304 returns
// the cached body. what names the resource in retry notices.
func (c *Client) fetch(ctx context.Context, endpoint string, immutable bool, what string) ([]byte, error) {
	c.cacheMu.Lock()
	cached, hit := c.cache[endpoint]
	c.cacheMu.Unlock()
	if hit && immutable {
		return cached.body, nil
	}
	attempts := 0
	body, err := backoff.Retry(ctx, func() ([]byte, error) {
		attempts++
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, backoff.Permanent(fmt.Errorf("rate limit: %w", err))
			}
		}
		var validators *cachedAnswer
		if hit {
			validators = &cached
		}
		return c.get(ctx, endpoint, validators)
	},
		backoff.WithBackOff(c.newBackOff()),
		backoff.WithMaxTries(c.maxAttempts),
		backoff.WithMaxElapsedTime(c.maxElapsed),
		backoff.WithNotify(func(err error, wait time.Duration) {
			if c.onRetry != nil {
				c.onRetry(fmt.Errorf("%s: %w", what, err), wait)
			}
		}),
	)
	if err != nil {
		if attempts > 1 {
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempts, err)
		}
		return nil, err
	}
	return body, nil
}

func (c *Client) gameLogURL(playerID int64, season int, gameType string) (string, error) {
	endpoint, err := url.JoinPath(c.baseURL, "api", "v1", "people", strconv.FormatInt(playerID, 10), "stats")
	if err != nil {
		return "", fmt.Errorf("build game log URL: %w", err)
	}
	q := url.Values{}
	q.Set("stats", "gameLog")
	q.Set("group", "hitting")
	q.Set("season", strconv.Itoa(season))
	q.Set("gameType", gameType)
	return endpoint + "?" + q.Encode(), nil
}

// get makes one attempt, conditional when validators (a cached answer) are given. Errors
// worth another attempt are returned as they are; the others are wrapped in
// backoff.Permanent. A 200 is cached with its validators.
func (c *Client) get(ctx context.Context, endpoint string, validators *cachedAnswer) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if validators != nil {
		if validators.etag != "" {
			req.Header.Set("If-None-Match", validators.etag)
		}
		if validators.lastModified != "" {
			req.Header.Set("If-Modified-Since", validators.lastModified)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, backoff.Permanent(err)
		}
		return nil, err // network error or attempt timeout: try again
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if resp.StatusCode == http.StatusNotModified && validators != nil {
		return validators.body, nil
	}
	if resp.StatusCode != http.StatusOK {
		statusErr := &StatusError{URL: endpoint, StatusCode: resp.StatusCode, Body: snippet(body),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		if statusErr.Retryable() {
			return nil, statusErr
		}
		return nil, backoff.Permanent(statusErr)
	}
	if readErr != nil {
		if ctx.Err() != nil {
			return nil, backoff.Permanent(fmt.Errorf("read body of GET %s: %w", endpoint, readErr))
		}
		return nil, fmt.Errorf("read body of GET %s: %w", endpoint, readErr) // cut off: try again
	}
	if len(body) > maxBodyBytes {
		return nil, backoff.Permanent(fmt.Errorf("GET %s: the body is larger than %d bytes", endpoint, maxBodyBytes))
	}
	c.remember(endpoint, cachedAnswer{body: body, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")})
	return body, nil
}

// remember caches a 200 answer, dropping the oldest answers beyond the cache's limit.
func (c *Client) remember(endpoint string, a cachedAnswer) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	if len(a.body) > c.cacheLimit {
		return
	}
	if old, ok := c.cache[endpoint]; ok {
		c.cacheBytes -= len(old.body)
		c.cacheOrder = slices.DeleteFunc(c.cacheOrder, func(e string) bool { return e == endpoint })
	}
	for c.cacheBytes+len(a.body) > c.cacheLimit && len(c.cacheOrder) > 0 {
		oldest := c.cacheOrder[0]
		c.cacheOrder = c.cacheOrder[1:]
		c.cacheBytes -= len(c.cache[oldest].body)
		delete(c.cache, oldest)
	}
	c.cache[endpoint] = a
	c.cacheOrder = append(c.cacheOrder, endpoint)
	c.cacheBytes += len(a.body)
}

// parseGameLog reads a complete 200 body.
func parseGameLog(body []byte) ([]Split, error) {
	var resp GameLogResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return nil, fmt.Errorf("the response is not JSON (%w): %s", err, snippet(body))
		}
		return nil, fmt.Errorf("the response is not a game log (%w): %s", err, snippet(body))
	}
	if resp.Stats == nil {
		return nil, fmt.Errorf("the response is not a game log: it has no \"stats\" list: %s", snippet(body))
	}
	var splits []Split
	matched := false
	for _, g := range *resp.Stats {
		if g.Type.DisplayName == "gameLog" && g.Group.DisplayName == "hitting" {
			matched = true
			splits = append(splits, g.Splits...)
		}
	}
	if !matched && len(*resp.Stats) > 0 {
		g := (*resp.Stats)[0]
		return nil, fmt.Errorf("the response is not a hitting game log: its stats are type %q, group %q",
			g.Type.DisplayName, g.Group.DisplayName)
	}
	return splits, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent, invalid or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// snippet is the start of a body, on one line, for an error message.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > bodySnippetBytes {
		cut := bodySnippetBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}
