package server_test

import (
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9003":      true,
		"127.1.2.3:0":         true,
		"[::1]:9003":          true,
		"::1":                 true,
		"localhost:8080":      true,
		"LOCALHOST:8080":      true,
		"127.0.0.1":           true,
		":9003":               false,
		"0.0.0.0:9003":        false,
		"[::]:9003":           false,
		"":                    false,
		"10.0.0.5:9003":       false,
		"loader:9003":         false,
		"localhost.evil:80":   false,
		"[::ffff:10.0.0.1]:1": false,
	} {
		if got := server.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
