package kinesalitetest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "KINESALITETEST_START_AND_EXIT"

// TestHelperStartAndExit is not a test on its own: run by
// TestKinesaliteDiesWithTheTestBinary as a child test binary, it starts
// kinesalite, prints its PID and exits without stopping it.
func TestHelperStartAndExit(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	p, err := startProcess(Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("PID", p.cur.cmd.Process.Pid)
	os.Exit(0)
}

func TestKinesaliteDiesWithTheTestBinary(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartAndExit$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper test binary: %v\n%s", err, out)
	}
	var pid int
	scanner := bufio.NewScanner(strings.NewReader(string(out)))
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "PID "); ok {
			pid, err = strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("helper printed a bad PID line %q", scanner.Text())
			}
		}
	}
	if pid == 0 {
		t.Fatalf("helper printed no PID:\n%s", out)
	}

	t.Cleanup(func() {
		// On failure, do not leave the orphan behind.
		if processRuns(pid) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill orphaned kinesalite %d: %v", pid, err)
			}
		}
	})

	deadline := time.Now().Add(5 * time.Second)
	for processRuns(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("kinesalite (pid %d) still runs 5s after its test binary exited", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processRuns reports whether pid is a live process: a zombie (killed, not
// yet reaped by its new parent) does not count.
func processRuns(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	end := strings.LastIndexByte(string(stat), ')')
	if end < 0 || end+2 >= len(stat) {
		return true
	}
	return stat[end+2] != 'Z'
}
