//go:build !linux

package kinesalitetest

import "os/exec"

// setDieWithParent does nothing where the kernel cannot kill a child with
// its parent: the shared kinesalite then outlives the test binary until it
// is killed by hand. CI and the dev machines run Linux.
func setDieWithParent(*exec.Cmd) {}
