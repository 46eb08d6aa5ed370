package desired

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermes/profile-controller/internal/hostile"
)

// readConfig reads profiles/p/config.yaml through a Volume, failing the test if it blocks.
func readConfig(t *testing.T, home string, prev GatewayConfig, now time.Time) GatewayConfig {
	t.Helper()
	done := make(chan GatewayConfig, 1)
	go func() {
		v, err := Loader{Home: home}.Open()
		if err != nil {
			t.Error(err)
			done <- GatewayConfig{}
			return
		}
		defer v.Close()
		done <- v.GatewayConfig("p", prev, now)
	}()
	select {
	case gc := <-done:
		return gc
	case <-time.After(deadline):
		t.Fatal("GatewayConfig blocked")
		return GatewayConfig{}
	}
}

func TestGatewayConfig(t *testing.T) {
	tests := []struct {
		name           string
		yaml           string // "" with noFile: no config.yaml at all
		noFile         bool
		wantStandalone bool
		wantWarning    string // substring; "" means no warning
	}{
		{name: "no file", noFile: true},
		{name: "empty file", yaml: ""},
		{name: "standalone true", yaml: "model: x\ngateway:\n  standalone: true\n  port: 1\n", wantStandalone: true},
		{name: "flow style", yaml: "gateway: {standalone: true}\n", wantStandalone: true},
		{name: "standalone false", yaml: "gateway:\n  standalone: false\n"},
		{name: "no gateway key", yaml: "model: x\n"},
		{name: "gateway null", yaml: "gateway:\n"},
		{name: "standalone null", yaml: "gateway:\n  standalone: ~\n"},
		{name: "invalid YAML", yaml: "gateway: [standalone: true\n", wantWarning: "invalid YAML"},
		{name: "top level not a mapping", yaml: "- a\n- b\n", wantWarning: "line 1: the top level is not a mapping"},
		{name: "gateway not a mapping", yaml: "gateway: yes please\n", wantWarning: "gateway is not a mapping"},
		{name: "standalone a string", yaml: "gateway:\n  standalone: \"true\"\n", wantWarning: `line 2: gateway.standalone is "true", want true or false`},
		{name: "standalone a number", yaml: "gateway:\n  standalone: 1\n", wantWarning: "gateway.standalone is \"1\""},
		{name: "oversized", yaml: "gateway: {standalone: true}\n#" + strings.Repeat("x", MaxConfigFileSize), wantWarning: "file too big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			dir := addProfile(t, home, "p", "")
			if !tt.noFile {
				writeFile(t, filepath.Join(dir, ConfigFileName), tt.yaml)
			}
			gc := readConfig(t, home, GatewayConfig{}, time.Now())
			if gc.Standalone != tt.wantStandalone {
				t.Errorf("Standalone = %v, want %v", gc.Standalone, tt.wantStandalone)
			}
			switch {
			case tt.wantWarning == "" && gc.Warning != "":
				t.Errorf("unexpected warning %q", gc.Warning)
			case tt.wantWarning != "" && !strings.Contains(gc.Warning, tt.wantWarning):
				t.Errorf("warning %q, want it to contain %q", gc.Warning, tt.wantWarning)
			case tt.wantWarning != "":
				path := filepath.Join(dir, ConfigFileName)
				if !strings.HasPrefix(gc.Warning, path+": ") || strings.Contains(gc.Warning, "\n") {
					t.Errorf("warning %q does not name %s in one line", gc.Warning, path)
				}
			}
		})
	}
}

// TestGatewayConfigRefusesSpecialFiles: a symlinked config.yaml is not followed (even to a file
// that says standalone), and a FIFO, socket or device is never opened and does not block.
func TestGatewayConfigRefusesSpecialFiles(t *testing.T) {
	t.Run("symlink", func(t *testing.T) {
		home := t.TempDir()
		dir := addProfile(t, home, "p", "")
		target := filepath.Join(home, "elsewhere.yaml")
		writeFile(t, target, "gateway: {standalone: true}\n")
		hostile.Symlink(t, target, filepath.Join(dir, ConfigFileName))
		gc := readConfig(t, home, GatewayConfig{}, time.Now())
		if gc.Standalone || !strings.Contains(gc.Warning, "symlink") {
			t.Errorf("got %+v, want not standalone with a symlink warning", gc)
		}
	})
	for _, kind := range []hostile.Kind{hostile.FIFO, hostile.Socket, hostile.Device} {
		t.Run(string(kind), func(t *testing.T) {
			home := hostile.ShortTempDir(t)
			dir := addProfile(t, home, "p", "")
			special := filepath.Join(dir, ConfigFileName)
			hostile.Special(t, kind, special)
			w := hostile.WatchOpens(t, special)
			gc := readConfig(t, home, GatewayConfig{}, time.Now())
			if n := w.Events(); n != 0 {
				t.Errorf("the %s was opened %d times", kind, n)
			}
			if gc.Standalone || !strings.Contains(gc.Warning, "not a regular file") {
				t.Errorf("got %+v, want not standalone with a not-regular warning", gc)
			}
		})
	}
}

// TestGatewayConfigCache: a stable earlier read of the very same file version is reused without
// reading; any change of the file (or an unstable read) reads it again.
func TestGatewayConfigCache(t *testing.T) {
	home := t.TempDir()
	dir := addProfile(t, home, "p", "")
	path := filepath.Join(dir, ConfigFileName)
	writeFile(t, path, "gateway: {standalone: false}\n")
	later := time.Now().Add(time.Minute) // past the racy window
	first := readConfig(t, home, GatewayConfig{}, later)
	if !first.Stable || first.ID == (GatewayConfig{}).ID {
		t.Fatalf("first read %+v: want a stable ID", first)
	}
	// A forged earlier read with the same ID proves that nothing was read.
	forged := first
	forged.Standalone = true
	if got := readConfig(t, home, forged, later); !got.Standalone {
		t.Errorf("a stable read of the same version was not reused: %+v", got)
	}
	forged.Stable = false
	if got := readConfig(t, home, forged, later); got.Standalone {
		t.Errorf("an unstable earlier read was reused: %+v", got)
	}
	writeFile(t, path+".new", "gateway: {standalone: true}\n")
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	forged.Stable, forged.Standalone = true, false
	if got := readConfig(t, home, forged, later); !got.Standalone {
		t.Errorf("a changed file was not read again: %+v", got)
	}
}

func TestServedProfiles(t *testing.T) {
	tests := []struct {
		state string
		want  []string
	}{
		{state: `{"gateway_state":"running"}`, want: nil},
		{state: `{"served_profiles":[]}`, want: []string{}},
		{state: `{"served_profiles":["default","alpha",3,"beta"]}`, want: []string{"default", "alpha", "beta"}},
		{state: `{"served_profiles":"alpha"}`, want: nil},
	}
	for _, tt := range tests {
		home := t.TempDir()
		writeFile(t, filepath.Join(home, StateFileName), tt.state)
		p, _, err := Loader{Home: home}.LoadProfile(DefaultProfile)
		if err != nil {
			t.Fatal(err)
		}
		if (p.Served == nil) != (tt.want == nil) || strings.Join(p.Served, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: Served = %#v, want %#v", tt.state, p.Served, tt.want)
		}
	}
}
