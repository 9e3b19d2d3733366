package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Go supports (the kernel fixes it for user space whatever CONFIG_HZ is).
const clockTicks = 100

// procStat is what the bench reads of one process from /proc.
type procStat struct {
	PID  int
	PPID int
	Comm string
	// CPU is user + system time of the process itself, in seconds.
	CPU float64
}

// readProcStat parses /proc/<pid>/stat. comm is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("stat of %d: no comm in %q", pid, data)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(fields) < 15 {
		return procStat{}, fmt.Errorf("stat of %d: %d fields", pid, len(fields))
	}
	num := func(field int) float64 {
		v, _ := strconv.ParseFloat(fields[field-3], 64)
		return v
	}
	return procStat{
		PID:  pid,
		PPID: int(num(4)),
		Comm: string(data[open+1 : end]),
		CPU:  (num(14) + num(15)) / clockTicks,
	}, nil
}

// allProcs reads every process's stat; processes that exit while being read are skipped.
func allProcs() []procStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// memoryKiB reads VmRSS and VmHWM (the peak resident set since the process started) from
// /proc/<pid>/status.
func memoryKiB(pid int) (rss, peak int64, err error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			rss = n
		case "VmHWM":
			peak = n
		}
	}
	return rss, peak, sc.Err()
}

// childPID finds the running child of this process whose comm is name (the services are
// started by test/stack as children of the bench; comm is cut to 15 bytes by the kernel).
func childPID(name string) (int, error) {
	if len(name) > 15 {
		name = name[:15]
	}
	me := os.Getpid()
	for _, p := range allProcs() {
		if p.PPID == me && p.Comm == name {
			return p.PID, nil
		}
	}
	return 0, fmt.Errorf("no child process %q of %d", name, me)
}
