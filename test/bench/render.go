package main

import (
	"path/filepath"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// The service files of every benchmark: a gateway that sleeps (and ignores SIGTERM when its
// profile holds bench-hang, for the hung-gateway row), a real s6-log logger into the volume
// (as in config/samples/debian-host.yaml, without the copy to stdout), and the default finish.
// Plain #!/bin/sh: Debian has no /command/with-contenv.
const (
	benchRunTemplate = `#!/bin/sh
# profile-controller benchmark gateway: it sleeps, and ignores SIGTERM when bench-hang exists.
if [ -e {{shquote .ProfileDir}}/bench-hang ]; then trap '' TERM; fi
exec sleep 2147483647
`
	benchLogRunTemplate = `#!/bin/sh
set -e
mkdir -p {{shquote (printf "%s/logs/gateways/%s" .HermesHome .Name)}}
exec s6-log n2 s100000 T {{shquote (printf "%s/logs/gateways/%s" .HermesHome .Name)}}
`
	// The same two scripts for the Python baseline, which substitutes the shell-quoted
	// @PROFILE_DIR@ and @LOG_DIR@ itself.
	baselineRunScript = `#!/bin/sh
# profile-controller benchmark gateway: it sleeps, and ignores SIGTERM when bench-hang exists.
if [ -e @PROFILE_DIR@/bench-hang ]; then trap '' TERM; fi
exec sleep 2147483647
`
	baselineLogRunScript = `#!/bin/sh
set -e
mkdir -p @LOG_DIR@
exec s6-log n2 s100000 T @LOG_DIR@
`
	hangMarker = "bench-hang"
)

// benchTemplates is the templates section of every config the rows write.
func benchTemplates() map[string]string {
	return map[string]string{"run": benchRunTemplate, "logRun": benchLogRunTemplate}
}

// renderFunc returns what the controller renders for each profile of home under the bench
// templates, for benchvol.Converge. It is the one place the driver leans on the controller's
// packages: a slot that drifts from the controller's own rendering shows up as writes during a
// world's warm-up pass, which the rows report.
func renderFunc(home string) (func(name string) ([]s6.File, error), error) {
	home = filepath.Clean(home)
	r, err := reconciler.NewRenderer(reconciler.Templates{Run: benchRunTemplate, LogRun: benchLogRunTemplate}, nil, home, "")
	if err != nil {
		return nil, err
	}
	return func(name string) ([]s6.File, error) {
		dir := home
		if name != desired.DefaultProfile {
			dir = filepath.Join(home, "profiles", name)
		}
		return r.Render(desired.Profile{Name: name, Dir: dir, Port: desired.Port(name)})
	}, nil
}
