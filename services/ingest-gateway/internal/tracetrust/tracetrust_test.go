package tracetrust

import (
	"fmt"
	"strings"
	"testing"
)

func TestCap(t *testing.T) {
	var members []string
	for i := range 20 {
		members = append(members, fmt.Sprintf("k%d=%s", i, strings.Repeat("v", 10)))
	}
	b := Cap(strings.Join(members, ","))
	if b.Len() != MaxBaggageMembers || b.Member("k0").Value() == "" || b.Member("k8").Value() != "" {
		t.Errorf("capped to %d members (%s), want the first %d", b.Len(), b, MaxBaggageMembers)
	}
	big := Cap("a=" + strings.Repeat("x", 600) + ",b=" + strings.Repeat("y", 600) + ",c=z")
	if big.Member("a").Value() == "" || big.Member("b").Value() != "" || len(big.String()) > MaxBaggageBytes {
		t.Errorf("capped to %q, want the first member only, within %d bytes", big, MaxBaggageBytes)
	}
	if got := Cap("bad member,ok=1"); got.Len() != 1 || got.Member("ok").Value() != "1" {
		t.Errorf("a malformed member dropped the rest: %s", got)
	}
	if CapHeader("") != "" || CapHeader("k=v") != "k=v" {
		t.Error("CapHeader changed a small header")
	}
}
