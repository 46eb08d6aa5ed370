package desired

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	yaml "go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// ConfigFileName is a profile's own hermes configuration, <profile dir>/config.yaml. The
// controller reads one key of it, gateway.standalone, and only under the multiplex topology.
const ConfigFileName = "config.yaml"

// MaxConfigFileSize caps reads of a profile's config.yaml; a bigger file counts as invalid.
const MaxConfigFileSize = 256 << 10

// GatewayConfig is what the controller takes from a profile's config.yaml.
type GatewayConfig struct {
	// Standalone is true only when the file holds `gateway: {standalone: true}`: the profile
	// keeps its own gateway under the multiplex topology instead of being served by the root's.
	Standalone bool
	// Warning is a one-line problem with the file, naming it ("" when none); the profile then
	// counts as not standalone.
	Warning string
	// ID is the file version this was read from (zero without a regular file); Stable reports
	// that it can prove a later read unchanged (safefs.FileID.Stable).
	ID     safefs.FileID
	Stable bool
}

// GatewayConfig reads profiles/<name>/config.yaml like every volume file: through real
// directories only, capped at MaxConfigFileSize, regular files only, never blocking on a FIFO.
// It never fails: a missing file is not standalone, and an unreadable or invalid one is not
// standalone with a Warning. prev, when its ID is stable and the file still has that ID, is
// returned as is without a read. "default" (the root) has no such setting: the zero value.
func (v *Volume) GatewayConfig(name string, prev GatewayConfig, now time.Time) GatewayConfig {
	if name == DefaultProfile || v.profiles == nil || !listable(name) {
		return GatewayConfig{}
	}
	d, err := v.profiles.OpenDir(name)
	if err != nil {
		return GatewayConfig{} // the profile itself reports why its directory cannot be opened
	}
	defer d.Close()
	return readGatewayConfig(d, prev, now)
}

func readGatewayConfig(d *safefs.Dir, prev GatewayConfig, now time.Time) GatewayConfig {
	path := joinPath(d.Path(), ConfigFileName)
	st, err := d.Lstat(ConfigFileName)
	if err == nil && prev.Stable && st.Mode&unix.S_IFMT == unix.S_IFREG && safefs.IDOf(&st) == prev.ID {
		return prev
	}
	var problem error
	var gc GatewayConfig
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		return gc
	case err != nil:
		problem = cause(err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		problem = fmt.Errorf("%w, not followed", safefs.ErrSymlink)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		problem = fmt.Errorf("%w: it is %s", safefs.ErrNotRegular, safefs.Kind(st.Mode))
	default:
		b, fst, err := d.ReadFile(ConfigFileName, MaxConfigFileSize)
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			return gc
		case err != nil:
			problem = cause(err)
		default:
			gc.ID = safefs.IDOf(&fst)
			gc.Stable = !now.IsZero() && gc.ID.Stable(now)
			gc.Standalone, problem = decodeStandalone(b)
		}
	}
	if problem != nil {
		gc.Standalone = false
		gc.Warning = path + ": " + oneLine(problem.Error()) + "; the profile is not standalone (served by the root gateway)"
	}
	return gc
}

// decodeStandalone finds gateway.standalone in a config.yaml. Absent keys, an empty file and
// null values mean not standalone, silently; a document that is not a mapping, a gateway that
// is not a mapping or a standalone that is not a boolean is an error.
func decodeStandalone(b []byte) (bool, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return false, fmt.Errorf("invalid YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return false, nil // empty
	}
	top := doc.Content[0]
	if isNull(top) {
		return false, nil
	}
	if top.Kind != yaml.MappingNode {
		return false, fmt.Errorf("line %d: the top level is not a mapping", top.Line)
	}
	gw := lookup(top, "gateway")
	if gw == nil || isNull(gw) {
		return false, nil
	}
	if gw.Kind != yaml.MappingNode {
		return false, fmt.Errorf("line %d: gateway is not a mapping", gw.Line)
	}
	sa := lookup(gw, "standalone")
	if sa == nil || isNull(sa) {
		return false, nil
	}
	var v bool
	if sa.Kind != yaml.ScalarNode || sa.ShortTag() != "!!bool" || sa.Decode(&v) != nil {
		return false, fmt.Errorf("line %d: gateway.standalone is %s, want true or false", sa.Line, shortQuote(sa.Value))
	}
	return v, nil
}

// lookup returns the value of key in a mapping node (aliases resolved), or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			n := m.Content[i+1]
			for n.Kind == yaml.AliasNode && n.Alias != nil {
				n = n.Alias
			}
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }
