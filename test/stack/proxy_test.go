package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestProxyFaults: each network fault does to a client what it claims, and Heal restores
// the link.
func TestProxyFaults(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer upstream.Close()
	host, err := HostPort(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxies(t).Add("web", host)
	get := func(timeout time.Duration) (time.Duration, error) {
		// A new connection each time: the faults act on established and new connections alike.
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		start := time.Now()
		resp, err := client.Get("http://" + p.Addr() + "/")
		if err != nil {
			return time.Since(start), err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && string(body) != "ok" {
			err = errors.New("body " + string(body))
		}
		return time.Since(start), err
	}
	healthy := func() {
		t.Helper()
		if _, err := get(5 * time.Second); err != nil {
			t.Fatalf("healthy proxy: %v", err)
		}
	}
	healthy()

	for _, f := range NetFaults {
		if err := p.Inject(f, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		took, err := get(2 * time.Second)
		var netErr net.Error
		switch f {
		case Latency:
			if err != nil || took < 400*time.Millisecond { // both ways, 300ms ± 75ms each
				t.Errorf("latency: %v after %s, want an answer after at least 400ms", err, took)
			}
		case HalfOpen:
			if !errors.As(err, &netErr) || !netErr.Timeout() {
				t.Errorf("half-open: %v after %s, want the client's timeout", err, took)
			}
		default:
			if err == nil {
				t.Errorf("%s: the request succeeded", f)
			}
		}
		t.Logf("%s: %v after %s", f, err, took.Round(time.Millisecond))
		if p.Fault() != f {
			t.Errorf("Fault() = %q, want %q", p.Fault(), f)
		}
		if err := p.Heal(); err != nil {
			t.Fatal(err)
		}
		healthy()
	}
	if err := p.Inject(Down, 0); err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := d.DialContext(ctx, "tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("a proxy that is down accepts connections")
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	healthy()
}
