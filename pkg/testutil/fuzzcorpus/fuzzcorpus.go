// Package fuzzcorpus reads the seed corpora go test keeps for native fuzz tests
// (testdata/fuzz/FuzzXxx/), so that a reference test can run a fast path and the code it
// replaces over the same inputs the fuzzers found.
package fuzzcorpus

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Bytes reads the inputs of a corpus directory whose fuzz target takes one []byte; it fails
// the test on a file of any other shape.
func Bytes(tb testing.TB, dir string) [][]byte {
	tb.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatalf("read corpus %s: %v", dir, err)
	}
	var inputs [][]byte
	for _, file := range files {
		text, err := os.ReadFile(filepath.Join(dir, file.Name()))
		if err != nil {
			tb.Fatalf("read corpus file: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			tb.Fatalf("corpus file %s is not one []byte input", file.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			tb.Fatalf("corpus file %s: %v", file.Name(), err)
		}
		inputs = append(inputs, []byte(s))
	}
	return inputs
}
