// Package buildinfo holds the version stamped into every Boxscore binary at build time.
package buildinfo

import "runtime/debug"

// Version is set with -ldflags "-X github.com/boxscore-dev/boxscore/pkg/buildinfo.Version=v1.2.3".
var Version = ""

// String returns the stamped version, or the VCS revision Go recorded, or "dev".
func String() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "dev"
}
