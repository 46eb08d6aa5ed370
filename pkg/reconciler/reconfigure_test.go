package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hermes/profile-controller/pkg/s6"
)

// reconfigure makes a new generation with env as extraEnv and the given owner and settle period.
func reconfigure(t *testing.T, c *Controller, env map[string]string, owner *s6.Owner, settle time.Duration) int64 {
	t.Helper()
	r, err := NewRenderer(Templates{}, env, c.opts.HermesHome, "")
	if err != nil {
		t.Fatal(err)
	}
	gen, err := c.Reconfigure(Options{Renderer: r, Owner: owner, Services: nopS6{}, Scanner: nopS6{}, Rules: Rules{SettlePeriod: settle}}, []string{"test"})
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// applyCoder looks at "coder", applies the file work it plans (no supervisor runs: the rescan
// is left out) with the look's generation and commits the result, as ReconcileKey does; it
// returns every action planned.
func applyCoder(t *testing.T, c *Controller) []string {
	t.Helper()
	r := c.openRoots()
	defer r.close()
	lk, d := c.look(r, "coder", false, c.opts.Now())
	var files []Action
	for _, a := range d.Actions {
		if a.Kind != Rescan {
			files = append(files, a)
		}
	}
	res := lk.set.exec.Apply(context.Background(), files)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	c.commit(logr.Discard(), lk, d, res, c.opts.Now())
	return actionStrings(d.Actions)
}

func TestReconfigureGenerationAndRewrites(t *testing.T) {
	c, _, runFile := cacheVolume(t, func() time.Time { return time.Now().Add(time.Hour) })
	if g := c.Generation(); g != 1 {
		t.Fatalf("generation at New: %d, want 1", g)
	}
	want := []string{"rescan gateway-coder"}
	if got := applyCoder(t, c); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("converged slot: %v, want %v", got, want)
	}
	before, err := os.Stat(runFile)
	if err != nil {
		t.Fatal(err)
	}

	// A generation that renders the same (only a timing rule changed): nothing is rewritten.
	if g := reconfigure(t, c, nil, nil, time.Minute); g != 2 {
		t.Fatalf("generation after a reconfigure: %d, want 2", g)
	}
	if got := c.settings().rules.SettlePeriod; got != time.Minute {
		t.Errorf("settle period in use: %v, want 1m", got)
	}
	if got := applyCoder(t, c); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("same rendering: %v, want %v (no write)", got, want)
	}
	if after, _ := os.Stat(runFile); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("run rewritten under a generation that renders the same")
	}

	// Another rendering: the files known to match the old one are compared again, and only the
	// one that differs is rewritten, in place.
	if g := reconfigure(t, c, map[string]string{"NEW": "1"}, nil, 0); g != 3 {
		t.Fatalf("generation: %d, want 3", g)
	}
	if got := c.settings().rules.SettlePeriod; got != 15*time.Second {
		t.Errorf("settle period back to its default: %v", got)
	}
	want = []string{"update gateway-coder run", "rescan gateway-coder"}
	if got := applyCoder(t, c); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("new extraEnv: %v, want %v", got, want)
	}
	if b, err := os.ReadFile(runFile); err != nil || !strings.Contains(string(b), "export NEW='1'\n") {
		t.Errorf("run after the update: %q, %v", b, err)
	}
	want = []string{"rescan gateway-coder"}
	if got := applyCoder(t, c); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("after the update: %v, want %v", got, want)
	}

	if _, err := c.Reconfigure(Options{}, nil); err == nil {
		t.Error("a reconfigure without a renderer was accepted")
	}
	if g := c.Generation(); g != 3 {
		t.Errorf("generation after a refused reconfigure: %d, want 3", g)
	}
}

func TestReconfigureSkeleton(t *testing.T) {
	c, _, runFile := cacheVolume(t, func() time.Time { return time.Now().Add(time.Hour) })
	slot := filepath.Dir(runFile)
	applyCoder(t, c)
	gid := os.Getgid() // a group of the caller's own (root may give any)
	if os.Geteuid() == 0 {
		gid = 54321
	}

	reconfigure(t, c, nil, &s6.Owner{UID: os.Getuid(), GID: gid}, 0)
	want := "update gateway-coder +skeleton;rescan gateway-coder"
	if got := strings.Join(applyCoder(t, c), ";"); got != want {
		t.Fatalf("gatewayUser newly set: %s, want %s", got, want)
	}
	for _, d := range []string{slot, filepath.Join(slot, "log")} {
		fi, err := os.Lstat(filepath.Join(d, "supervise"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o710 || int(st.Gid) != gid {
			t.Errorf("%s/supervise: mode %v gid %d, want 0710 gid %d", d, fi.Mode(), st.Gid, gid)
		}
	}
	if got := strings.Join(applyCoder(t, c), ";"); got != "rescan gateway-coder" {
		t.Errorf("once the skeleton is made: %s, want only the rescan", got)
	}
	if ks := c.state("coder"); ks.SkeletonGID == nil || *ks.SkeletonGID != gid {
		t.Errorf("skeleton group not remembered: %v", ks.SkeletonGID)
	}

	// gatewayUser unset: the skeleton goes back to group 0 (root), once.
	reconfigure(t, c, nil, nil, 0)
	if got := strings.Join(applyCoder(t, c), ";"); got != want {
		t.Errorf("gatewayUser unset: %s, want %s", got, want)
	}
	if got := strings.Join(applyCoder(t, c), ";"); got != "rescan gateway-coder" {
		t.Errorf("after that: %s, want only the rescan", got)
	}
}

func TestSkeletonWanted(t *testing.T) {
	gid := func(g int) *int { return &g }
	alice := &s6.Owner{UID: 1000, GID: 1000}
	for _, tc := range []struct {
		name  string
		owner *s6.Owner
		have  *int
		want  *s6.Owner
	}{
		{"no user, none made", nil, nil, nil},
		{"no user, root's", nil, gid(0), nil},
		{"user unset after a skeleton", nil, gid(1000), &s6.Owner{}},
		{"user newly set", alice, nil, alice},
		{"user's skeleton made", alice, gid(1000), nil},
		{"another user's", alice, gid(2000), alice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := skeletonWanted(tc.owner, &keyState{SkeletonGID: tc.have})
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("skeletonWanted = %v, want %v", got, tc.want)
			}
		})
	}
}
