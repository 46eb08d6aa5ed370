package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hermes/profile-controller/internal/volume"
)

// countingS6 counts every s6 call; none is expected from a standby.
type countingS6 struct{ calls atomic.Int64 }

func (c *countingS6) call() error                               { c.calls.Add(1); return errors.New("no s6 call expected") }
func (c *countingS6) Up(context.Context, string) error          { return c.call() }
func (c *countingS6) Down(context.Context, string) error        { return c.call() }
func (c *countingS6) Kill(context.Context, string) error        { return c.call() }
func (c *countingS6) Rescan(context.Context, string) error      { return c.call() }
func (c *countingS6) RescanPrune(context.Context, string) error { return c.call() }

// leaseVolume is a volume with one profile that wants a slot, and a controller with the lease on.
func leaseVolume(t *testing.T, standby bool) (*Controller, *countingS6, string) {
	t.Helper()
	root := t.TempDir()
	home, scandir := filepath.Join(root, "home"), filepath.Join(root, "service")
	dir := filepath.Join(home, "profiles", "alpha")
	for _, d := range []string{dir, scandir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer(Templates{}, nil, home, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &countingS6{}
	c := New(Options{
		HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(root, "run"),
		Services: s, Scanner: s, Renderer: r, Log: logr.Discard(), Lease: true, Standby: standby,
	})
	return c, s, scandir
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestLeaseStandbyNeverActs: without the lease (another holder, or role standby) neither the
// per-key reconcile nor a pass touches the scandir or s6, and Pass says why.
func TestLeaseStandbyNeverActs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		standby bool
		holder  bool
		want    string
	}{
		{name: "held by another", holder: true, want: "standby: owned by host other pid 99 since 2026-12-02T00:00:00Z"},
		{name: "role standby, lease free", standby: true, want: "standby: role standby (configured): never acts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s, scandir := leaseVolume(t, tc.standby)
			if tc.holder {
				other, err := volume.AcquireLease(c.opts.HermesHome, volume.Holder{Host: "other", PID: 99, Since: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)})
				if err != nil {
					t.Fatal(err)
				}
				defer other.Release()
			}
			role, err := c.TakeLease()
			if err != nil || role.Role != RoleStandby {
				t.Fatalf("TakeLease = %+v, %v; want standby", role, err)
			}
			if got := c.Standby(); got != tc.want {
				t.Errorf("Standby() = %q, want %q", got, tc.want)
			}
			if _, err := c.ReconcileKey(context.Background(), "alpha"); err != nil {
				t.Errorf("ReconcileKey: %v", err)
			}
			if rep := c.Pass(context.Background(), true, false); !errors.Is(rep.Err, ErrStandby) {
				t.Errorf("Pass error %v, want ErrStandby", rep.Err)
			}
			if got := entries(t, scandir); len(got) != 0 {
				t.Errorf("a standby wrote to the scandir: %v", got)
			}
			if n := s.calls.Load(); n != 0 {
				t.Errorf("a standby made %d s6 calls", n)
			}
			if tc.standby {
				if _, err := os.Lstat(filepath.Join(c.opts.HermesHome, volume.LeaseName)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("role standby touched the lease file: %v", err)
				}
			}
		})
	}
}

// TestLeaseLostDuringLook: a plan made while the controller owned the volume is not applied
// once ownership changed before the apply (the lease lost in the middle of a look or a pass).
func TestLeaseLostDuringLook(t *testing.T) {
	c, _, _ := leaseVolume(t, false)
	if role, err := c.TakeLease(); err != nil || role.Role != RoleOwner {
		t.Fatalf("TakeLease = %+v, %v", role, err)
	}
	defer c.ReleaseLease()
	tok := c.own.token()
	release, ok := c.own.begin(tok)
	if !ok {
		t.Fatal("an owner's apply was refused")
	}
	release()
	c.own.set(modeStandby) // step-down
	if _, ok := c.own.begin(tok); ok {
		t.Error("an apply planned before the step-down was admitted after it")
	}
	c.own.set(modeOwner) // and back: a new epoch, the old token is still refused
	if _, ok := c.own.begin(tok); ok {
		t.Error("an apply planned two ownership changes ago was admitted")
	}
	if release, ok := c.own.begin(c.own.token()); !ok {
		t.Error("a fresh owner token was refused")
	} else {
		release()
	}
}

// TestLeaseOffActsWithoutFile: lease off (the zero Options) acts at once and creates no lease file.
func TestLeaseOffActsWithoutFile(t *testing.T) {
	c, _, _ := leaseVolume(t, false)
	c.opts.Lease = false
	c.initOwnership()
	if role, err := c.TakeLease(); err != nil || role.Role != RoleOwner || c.Standby() != "" {
		t.Fatalf("TakeLease with the lease off = %+v, %v", role, err)
	}
	if _, err := os.Lstat(filepath.Join(c.opts.HermesHome, volume.LeaseName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease off touched the lease file: %v", err)
	}
}
