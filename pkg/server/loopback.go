package server

import (
	"net"
	"strings"
)

// IsLoopback reports whether addr ("host:port", or a bare host) can only be reached from
// this machine: a host that is an IP in 127.0.0.0/8, ::1, or the name "localhost". An empty
// host or an unspecified address (":9000", "0.0.0.0", "::") listens on every interface, and
// any other name may resolve anywhere: neither is loopback. This is the line between the
// local quickstart, which may stay plaintext, and a deployment, which must not be by
// accident.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
