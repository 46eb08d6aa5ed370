package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version and commit are set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.commit=<sha>"; without them the build info is used.
var (
	version = ""
	commit  = ""
)

// versionInfo is what `version` and `--version` print.
type versionInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	CommitTime string `json:"commitTime,omitempty"`
	Modified   bool   `json:"modified"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

// readVersionInfo combines the -X ldflags with runtime/debug's build info: the module version
// when no version was stamped, and the VCS revision, time and dirty flag that `go build` records
// (unless -buildvcs=false).
func readVersionInfo() versionInfo {
	v := versionInfo{
		APIVersion: apiVersion, Kind: "Version",
		Version: version, Commit: commit,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

// text is the human form: the version on the first line (what scripts cut), then the details.
func (v versionInfo) text() string {
	commit := v.Commit
	var extra []string
	if v.CommitTime != "" {
		extra = append(extra, v.CommitTime)
	}
	if v.Modified {
		extra = append(extra, "modified")
	}
	if len(extra) > 0 {
		commit += " (" + strings.Join(extra, ", ") + ")"
	}
	return fmt.Sprintf("profile-controller %s\ncommit:   %s\ngo:       %s\nplatform: %s\n", v.Version, commit, v.GoVersion, v.Platform)
}

func newVersionCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Long: `Print the version (stamped with -ldflags "-X main.version=..."; else the module version),
the commit (-X main.commit=..., else the VCS revision go build recorded), the Go version and the
platform. --version prints the same text. Needs no configuration.`,
		Example: `  profile-controller version
  profile-controller version -o json | jq -r .commit`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(cmd, output, "text", "json", "yaml"); err != nil {
				return err
			}
			v := readVersionInfo()
			if output == "text" {
				_, err := fmt.Fprint(a.stdout, v.text())
				return err
			}
			return writeDocument(a.stdout, output, v)
		},
	}
	outputFlag(cmd, &output, "text", "json", "yaml")
	return cmd
}
