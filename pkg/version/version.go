// Package version reports the build's version, stamped from git at link time
// (scripts/build.sh sets Version with -ldflags -X) or read from the VCS
// information the Go toolchain records in every binary built inside a checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time: -X github.com/microk8s-metallb/metallb/pkg/version.Version=v0.1.0-3-gabc.
// It is a variable only because the linker can set nothing else.
var Version = ""

// Info describes the running binary.
type Info struct {
	Version   string `json:"version" yaml:"version"`
	Commit    string `json:"commit,omitempty" yaml:"commit,omitempty"`
	Modified  bool   `json:"modified" yaml:"modified"`
	GoVersion string `json:"goVersion" yaml:"goVersion"`
}

// Get returns what is known of this build.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// String renders the info on one line, e.g. "metallb v0.1.0 (commit 1a2b3c4d, go1.26.8)".
func (i Info) String() string {
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	if i.Modified {
		commit += "-dirty"
	}
	return fmt.Sprintf("metallb %s (commit %s, %s)", i.Version, commit, i.GoVersion)
}
