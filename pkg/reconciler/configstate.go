package reconciler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
)

// ConfigStateFile is the file in the runtime dir where a running controller (Run) says which
// configuration generation it uses, for `status` in another process. It is written (temp file,
// rename) when Run starts and whenever that changes, and removed when Run returns.
const ConfigStateFile = "config.json"

// maxConfigStateSize caps the read of the config state file.
const maxConfigStateSize = 16 << 10

// ConfigStatus is the configuration a running controller uses, as `status` shows it.
type ConfigStatus struct {
	// Generation is 1 for the configuration the controller started with, one more for each
	// reload it applied.
	Generation int64 `json:"generation"`
	// Rendering identifies what the rendered slot files depend on (Renderer.Generation).
	Rendering string `json:"rendering"`
	// AppliedAt is when the generation was applied (RFC 3339); Changed names the fields a
	// reload changed.
	AppliedAt string   `json:"appliedAt"`
	Changed   []string `json:"changed,omitempty"`
	// PID is the running controller's process.
	PID int `json:"pid"`
	// Refused is the last reload refused since (one line), RefusedAt when ("" when none).
	Refused   string `json:"refused,omitempty"`
	RefusedAt string `json:"refusedAt,omitempty"`
	// RenderingDiffers is set by Status when the configuration it was given renders slot
	// files otherwise than the running controller does: an edit not applied (yet, or refused).
	RenderingDiffers bool `json:"renderingDiffers,omitempty"`
}

func (s *ConfigStatus) applied(st *settings, changed []string, now time.Time) {
	*s = ConfigStatus{
		Generation: st.gen, Rendering: st.renderer.Generation(), AppliedAt: now.UTC().Format(time.RFC3339),
		Changed: changed, PID: os.Getpid(),
	}
}

func (s *ConfigStatus) refused(err error, now time.Time) {
	s.Refused = strings.ReplaceAll(err.Error(), "\n", "; ")
	s.RefusedAt = now.UTC().Format(time.RFC3339)
}

// publishConfigState starts (on) or stops (off) keeping ConfigStateFile: Run's business only,
// so that a one-shot command never claims to be the controller in use.
func (c *Controller) publishConfigState(on bool) {
	c.reconfMu.Lock()
	defer c.reconfMu.Unlock()
	c.publishing = on
	if on {
		c.saveConfigState()
		return
	}
	c.savedConfig = nil
	path := filepath.Join(c.opts.RuntimeDir, ConfigStateFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.opts.Log.Error(err, "Could not remove the config state file", "path", path)
	}
}

// saveConfigState writes c.configState when Run publishes it and it changed. reconfMu is held.
func (c *Controller) saveConfigState() {
	if !c.publishing {
		return
	}
	b, err := json.Marshal(c.configState)
	if err != nil || bytes.Equal(b, c.savedConfig) {
		return
	}
	path := filepath.Join(c.opts.RuntimeDir, ConfigStateFile)
	tmp := path + ".tmp"
	err = os.WriteFile(tmp, b, 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		c.opts.Log.Error(err, "Could not write the config state file", "path", path)
		return
	}
	c.savedConfig = b
}

// readConfigState reads what a running controller published (nil when nothing or unreadable).
func (c *Controller) readConfigState() *ConfigStatus {
	d, err := safefs.OpenDir(c.opts.RuntimeDir)
	if err != nil {
		return nil
	}
	defer d.Close()
	b, _, err := d.ReadFile(ConfigStateFile, maxConfigStateSize)
	if err != nil {
		return nil
	}
	var s ConfigStatus
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	s.RenderingDiffers = s.Rendering != c.settings().renderer.Generation()
	return &s
}

// String is the status table's line about the configuration in use.
func (s ConfigStatus) String() string {
	line := fmt.Sprintf("config generation %d (rendering %s, applied %s", s.Generation, s.Rendering, s.AppliedAt)
	if len(s.Changed) > 0 {
		line += ", changed " + strings.Join(s.Changed, ",")
	}
	line += ")"
	if s.RenderingDiffers {
		line += "; the config file renders otherwise: not applied by the running controller"
	}
	if s.Refused != "" {
		line += "; last reload refused at " + s.RefusedAt + ": " + s.Refused
	}
	return line
}
