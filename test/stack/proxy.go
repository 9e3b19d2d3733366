package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// NetFault is a kind of network fault a Proxy injects into the connections through it.
type NetFault string

// The network faults. Each lasts until Heal.
const (
	// Latency delays every chunk, both ways, by a latency with jitter.
	Latency NetFault = "latency"
	// Drop swallows every byte, both ways, and closes each connection after a timeout: a
	// link that loses packets until the peer gives up.
	Drop NetFault = "drop"
	// HalfOpen swallows every byte, both ways, and never closes: a peer that stops
	// answering without a FIN or RST (a partition, a dead host). Only the client's own
	// deadlines and keepalives notice; Heal closes the connections.
	HalfOpen NetFault = "half-open"
	// Reset answers the first bytes of each connection, new or established, with an RST.
	Reset NetFault = "reset"
	// Down stops the proxy: its established connections are closed and new ones refused,
	// as a peer whose host is gone.
	Down NetFault = "down"
)

// NetFaults lists every network fault.
var NetFaults = []NetFault{Latency, Drop, HalfOpen, Reset, Down}

// Proxies are TCP proxies on 127.0.0.1 in front of the stack's dependencies and services
// (PostgreSQL, Kinesis, the transformer, the loader), through which a test breaks the
// network between them. They are toxiproxy's proxies and toxics run in-process as a library:
// the same fault implementations teams use against real services, with no daemon to start.
type Proxies struct {
	t      testing.TB
	server *toxiproxy.ApiServer
}

// NewProxies returns an empty set of proxies; every proxy is stopped when the test ends.
func NewProxies(t testing.TB) *Proxies {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	ps := &Proxies{t: t, server: server}
	t.Cleanup(func() { _ = server.Collection.Clear() })
	return ps
}

// Proxy is one proxied link: clients connect to Addr, which forwards to the upstream.
type Proxy struct {
	Name     string
	Upstream string
	addr     string
	p        *toxiproxy.Proxy

	mu    sync.Mutex
	fault NetFault // the fault in force, "" when healthy
}

// Add starts a proxy named name on a free port of 127.0.0.1 forwarding to upstream
// (host:port). The upstream need not be listening yet.
func (ps *Proxies) Add(name, upstream string) *Proxy {
	ps.t.Helper()
	for attempt := 0; ; attempt++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(ps.t)))
		p := toxiproxy.NewProxy(ps.server, name, addr, upstream)
		err := ps.server.Collection.Add(p, true)
		if err == nil {
			return &Proxy{Name: name, Upstream: upstream, addr: addr, p: p}
		}
		if attempt == 3 {
			ps.t.Fatalf("stack: proxy %s to %s: %v", name, upstream, err)
		}
	}
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.addr }

// Fault is the fault in force, "" when the proxy is healthy.
func (p *Proxy) Fault() NetFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// toxic adds one toxic, both ways when both is set (downstream only otherwise).
func (p *Proxy) toxic(typ string, attrs map[string]any, streams ...string) error {
	for _, stream := range streams {
		body, err := json.Marshal(map[string]any{"name": typ + "_" + stream, "type": typ, "stream": stream,
			"toxicity": 1.0, "attributes": attrs})
		if err != nil {
			return err
		}
		if _, err := p.p.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("proxy %s: add %s %s: %w", p.Name, typ, stream, err)
		}
	}
	return nil
}

// Inject puts fault f in force until Heal. latency is the Latency fault's delay (its
// jitter a quarter of it); the Drop fault closes a connection after the same time.
func (p *Proxy) Inject(f NetFault, latency time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault != "" {
		return fmt.Errorf("proxy %s: %s already in force", p.Name, p.fault)
	}
	both := []string{"upstream", "downstream"}
	var err error
	switch f {
	case Latency:
		err = p.toxic("latency", map[string]any{"latency": latency.Milliseconds(), "jitter": latency.Milliseconds() / 4}, both...)
	case Drop:
		err = p.toxic("timeout", map[string]any{"timeout": max(latency.Milliseconds(), 1)}, both...)
	case HalfOpen:
		err = p.toxic("timeout", map[string]any{"timeout": 0}, both...)
	case Reset:
		err = p.toxic("reset_peer", map[string]any{"timeout": 0}, both...)
	case Down:
		p.p.Stop()
	default:
		err = fmt.Errorf("proxy %s: no fault %q", p.Name, f)
	}
	if err != nil {
		p.p.Toxics.ResetToxics(context.Background())
		return err
	}
	p.fault = f
	return nil
}

// Heal ends the fault in force: toxics are removed (the connections a Drop or HalfOpen
// held are closed) and a stopped proxy listens again on its address.
func (p *Proxy) Heal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.Toxics.ResetToxics(context.Background())
	if p.fault == Down {
		// The port was just released; retry briefly should another bind race us.
		var err error
		for range 50 {
			if err = p.p.Start(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("proxy %s: listen again on %s: %w", p.Name, p.addr, err)
		}
	}
	p.fault = ""
	return nil
}

// ProxiedDatabaseURL is databaseURL with its host and port replaced by the proxy's.
func ProxiedDatabaseURL(databaseURL string, p *Proxy) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	u.Host = p.Addr()
	return u.String(), nil
}

// HostPort is the host:port of an http(s) endpoint or a postgres:// URL.
func HostPort(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Port() == "" {
		return "", fmt.Errorf("%s names no port", rawURL)
	}
	return u.Host, nil
}
