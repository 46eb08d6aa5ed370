package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestLeaseReplacedFileWaitsForOldOwner: the lease file is replaced while A owns the volume and
// B stands by. B takes the new file first but waits A's check period before it acts; A's next
// check fails to re-take and steps down; only then does B take over (with a boot pass).
func TestLeaseReplacedFileWaitsForOldOwner(t *testing.T) {
	a, _, _ := leaseVolume(t, false)
	a.opts.ResyncPeriod = 3 * time.Second
	a.live.Store(newSettings(a.opts, a.settings().gen, a.services)) // the period in use
	b, _, _ := leaseVolume(t, false)
	b.opts.HermesHome, b.loader.Home = a.opts.HermesHome, a.opts.HermesHome
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	b.opts.Now = func() time.Time { return now }
	ctx := context.Background()
	if role, _ := a.TakeLease(); role.Role != RoleOwner {
		t.Fatalf("A: %+v", role)
	}
	defer a.ReleaseLease()
	if role, _ := b.TakeLease(); role.Role != RoleStandby {
		t.Fatalf("B: %+v", role)
	}
	defer b.ReleaseLease()
	if err := os.Remove(filepath.Join(a.opts.HermesHome, volume.LeaseName)); err != nil {
		t.Fatal(err)
	}

	b.checkLease(ctx) // B takes the new file, and waits
	if b.own.lease == nil || modeOf(b.own.token()) != modeStandby {
		t.Fatalf("B after taking a replaced file: lease %v, mode %d; want held and standby", b.own.lease, modeOf(b.own.token()))
	}
	if want := "standby: lease taken on a replaced file; acting from 2026-12-02T01:00:04Z, once the previous owner has stepped down"; b.Standby() != want {
		t.Errorf("B says %q, want %q", b.Standby(), want)
	}
	a.checkLease(ctx) // A finds its file replaced and the new one held: it steps down
	if a.own.lease != nil || modeOf(a.own.token()) != modeStandby {
		t.Fatalf("A did not step down: lease %v, mode %d", a.own.lease, modeOf(a.own.token()))
	}
	if !strings.HasPrefix(a.Standby(), "standby: owned by host ") {
		t.Errorf("A says %q", a.Standby())
	}
	now = now.Add(3 * time.Second)
	b.checkLease(ctx) // still inside A's period and a second
	if modeOf(b.own.token()) != modeStandby {
		t.Fatal("B acted before the old owner's check period was over")
	}
	now = now.Add(1500 * time.Millisecond)
	b.checkLease(ctx)
	if modeOf(b.own.token()) != modeOwner || b.Standby() != "" {
		t.Fatalf("B did not take over: mode %d, %q", modeOf(b.own.token()), b.Standby())
	}
}

// TestLeaseSameFileTakesOverAtOnce: when the owner goes (its lock freed, the file unchanged),
// the standby takes over at its next check, without waiting.
func TestLeaseSameFileTakesOverAtOnce(t *testing.T) {
	a, _, _ := leaseVolume(t, false)
	b, _, _ := leaseVolume(t, false)
	b.opts.HermesHome, b.loader.Home = a.opts.HermesHome, a.opts.HermesHome
	if role, _ := a.TakeLease(); role.Role != RoleOwner {
		t.Fatalf("A: %+v", role)
	}
	if role, _ := b.TakeLease(); role.Role != RoleStandby {
		t.Fatalf("B: %+v", role)
	}
	defer b.ReleaseLease()
	a.ReleaseLease()
	b.checkLease(context.Background())
	if modeOf(b.own.token()) != modeOwner {
		t.Fatalf("B did not take over at once: %q", b.Standby())
	}
}

// TestLeaseQuietUntilItActs: a lease taken quietly (reconcile --once) leaves the file as the
// previous holder wrote it until the controller acts; a pass with actions names the controller
// before applying them (here they fail: the stand-in s6 refuses every call).
func TestLeaseQuietUntilItActs(t *testing.T) {
	c, _, _ := leaseVolume(t, false)
	leasePath := filepath.Join(c.opts.HermesHome, volume.LeaseName)
	prev := []byte(`{"host":"other","pid":1,"since":"2026-01-01T00:00:00Z"}` + "\n")
	if err := os.WriteFile(leasePath, prev, 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Lstat(leasePath)
	if err != nil {
		t.Fatal(err)
	}
	if role, err := c.TakeLeaseQuietly(); err != nil || role.Role != RoleOwner {
		t.Fatalf("TakeLeaseQuietly = %+v, %v", role, err)
	}
	if rep := c.Pass(context.Background(), false, true); len(rep.Actions) == 0 {
		t.Fatal("the dry run planned nothing; the volume wants two slots")
	}
	got, _ := os.ReadFile(leasePath)
	after, err := os.Lstat(leasePath)
	if err != nil || string(got) != string(prev) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the lease taken quietly wrote the file before acting: %q, %v", got, err)
	}

	c.Pass(context.Background(), false, false) // acts (and fails at s6)
	got, _ = os.ReadFile(leasePath)
	if !strings.Contains(string(got), fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Errorf("a pass that acted left the lease file %q; want this controller's identity", got)
	}
	c.ReleaseLease()
}
