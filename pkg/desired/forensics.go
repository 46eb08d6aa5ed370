package desired

import (
	"encoding/json"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
)

// Files a gateway keeps under <profile dir>/state/ about its own lifecycle.
const (
	StateDirName     = "state"
	LedgerFileName   = "gateway.lifecycle.json"
	HeartbeatName    = "gateway.heartbeat"
	maxLedgerSize    = 4 << 10
	PriorExitClean   = "clean"
	PriorExitUnclean = "unclean"
	PriorExitUnknown = "unknown"
)

// Forensics is what a profile's gateway left behind about its last run.
type Forensics struct {
	// PriorExit is "clean" (the ledger says exited: it reached an exit path), "unclean" (the
	// ledger says running: the process died without one, SIGKILL, OOM, the host dying) or
	// "unknown" (no ledger, or one that cannot be read).
	PriorExit string
	// ExitCode is the ledger's exit code of a clean exit, else -1.
	ExitCode int
	// HeartbeatAt is the heartbeat file's mtime (zero when the gateway never wrote one).
	HeartbeatAt time.Time
}

// Forensics reads the lifecycle ledger and the heartbeat of a profile ("default": the root),
// like every volume file: through real directories only, capped, regular files only. It never
// fails: what cannot be read is "unknown". It is read for the boot log and status only, never
// on the per-key hot path.
func (v *Volume) Forensics(name string) Forensics {
	f := Forensics{PriorExit: PriorExitUnknown, ExitCode: -1}
	dir := v.home
	if name != DefaultProfile {
		if v.profiles == nil || !listable(name) {
			return f
		}
		d, err := v.profiles.OpenDir(name)
		if err != nil {
			return f
		}
		defer d.Close()
		dir = d
	}
	st, err := dir.OpenDir(StateDirName)
	if err != nil {
		return f
	}
	defer st.Close()
	if hb, err := st.Lstat(HeartbeatName); err == nil && safefs.IDOf(&hb).Mode&0o170000 == 0o100000 {
		f.HeartbeatAt = time.Unix(hb.Mtim.Unix())
	}
	b, _, err := st.ReadFile(LedgerFileName, maxLedgerSize)
	if err != nil {
		return f
	}
	var ledger struct {
		Phase    string `json:"phase"`
		ExitCode *int   `json:"exit_code"`
	}
	if json.Unmarshal(b, &ledger) != nil {
		return f
	}
	switch ledger.Phase {
	case "exited":
		f.PriorExit = PriorExitClean
		if ledger.ExitCode != nil {
			f.ExitCode = *ledger.ExitCode
		}
	case "running":
		f.PriorExit = PriorExitUnclean
	}
	return f
}
