package stack

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is a tiny authoritative DNS server on 127.0.0.1 (UDP and TCP, one port) answering A
// queries for the names it was given, as the cluster DNS answers for a headless Service:
// one A record per pod. Other names are NXDOMAIN.
type DNS struct {
	// Addr is the server's address, host:port, e.g. for a gRPC target
	// dns://<Addr>/name:port.
	Addr string

	records map[string][]net.IP // fully qualified, lower case
	mu      sync.Mutex
	queries map[string]int // name -> A queries answered
}

// StartDNS serves records (name -> IPv4 addresses) until the test ends.
func StartDNS(t testing.TB, records map[string][]string) *DNS {
	t.Helper()
	d := &DNS{records: map[string][]net.IP{}, queries: map[string]int{}}
	for name, addrs := range records {
		for _, a := range addrs {
			ip := net.ParseIP(a).To4()
			if ip == nil {
				t.Fatalf("dns: %q is not an IPv4 address", a)
			}
			d.records[dns.Fqdn(strings.ToLower(name))] = append(d.records[dns.Fqdn(strings.ToLower(name))], ip)
		}
	}
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	for range 20 { // the UDP port must be free for TCP too
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("dns: %v", err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close()
	}
	if err != nil {
		t.Fatalf("dns: no port free for UDP and TCP: %v", err)
	}
	d.Addr = pc.LocalAddr().String()
	handler := dns.HandlerFunc(d.serve)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		served := make(chan error, 1)
		go func() { served <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-served:
			t.Fatalf("dns: %v", err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			if err := <-served; err != nil {
				t.Errorf("dns: %v", err)
			}
		})
	}
	return d
}

func (d *DNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	for _, q := range r.Question {
		name := strings.ToLower(q.Name)
		ips, known := d.records[name]
		if !known {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype != dns.TypeA || q.Qclass != dns.ClassINET {
			continue // NOERROR, no data: an A-only name
		}
		d.mu.Lock()
		d.queries[name]++
		d.mu.Unlock()
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: ip})
		}
	}
	_ = w.WriteMsg(m) // the client went away: nothing to do
}

// Queries is how many A queries for name the server answered.
func (d *DNS) Queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[dns.Fqdn(strings.ToLower(name))]
}
