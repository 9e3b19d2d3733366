package stack_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// TestDNSAnswersTheGivenNames: Go's own resolver, sent to the server over UDP and over TCP,
// gets every A record of a known name and NXDOMAIN for any other.
func TestDNSAnswersTheGivenNames(t *testing.T) {
	d := stack.StartDNS(t, map[string][]string{"svc.boxscore.test": {"127.0.0.2", "127.0.0.3"}})
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, d.Addr)
		}}
		addrs, err := r.LookupHost(t.Context(), "svc.boxscore.test")
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		slices.Sort(addrs)
		if !slices.Equal(addrs, []string{"127.0.0.2", "127.0.0.3"}) {
			t.Errorf("%s: svc.boxscore.test resolves to %v", network, addrs)
		}
		_, err = r.LookupHost(t.Context(), "other.boxscore.test")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: other.boxscore.test: %v, want not found", network, err)
		}
	}
	if n := d.Queries("svc.boxscore.test"); n < 2 {
		t.Errorf("%d A queries counted, want at least 2", n)
	}
}
