package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/s6"
)

// nopS6 is an s6 that is never reached in these tests (nothing is applied).
type nopS6 struct{}

func (nopS6) Up(context.Context, string) error          { return errors.New("unexpected") }
func (nopS6) Down(context.Context, string) error        { return errors.New("unexpected") }
func (nopS6) Kill(context.Context, string) error        { return errors.New("unexpected") }
func (nopS6) Rescan(context.Context, string) error      { return errors.New("unexpected") }
func (nopS6) RescanPrune(context.Context, string) error { return errors.New("unexpected") }

// onePathVolume lays out on real files every situation the full pass and the per-key path once
// decided differently: valid profiles with and without slots, a directory without SOUL.md, an
// invalid name, a symlinked profile, profiles/default, orphaned slots (up and down), a foreign
// file and a symlink under slot names, staging leftovers with and without a profile, and a
// profile whose render fails.
func onePathVolume(t *testing.T) (*Controller, string) {
	t.Helper()
	root := t.TempDir()
	home, scandir := filepath.Join(root, "home"), filepath.Join(root, "service")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	profile := func(name, state string) {
		dir := filepath.Join(home, "profiles", name)
		must(os.MkdirAll(dir, 0o755))
		must(os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("x"), 0o644))
		if state != "" {
			must(os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(state), 0o644))
		}
	}
	must(os.MkdirAll(scandir, 0o755))
	must(os.MkdirAll(filepath.Join(home, "profiles"), 0o755))
	must(os.WriteFile(filepath.Join(home, "gateway_state.json"), []byte(`{"gateway_state":"running"}`), 0o644))
	profile("alpha", `{"desired_state":"running"}`)
	profile("beta", `{"desired_state":"stopped"}`)
	profile("gamma", `{"gateway_state":"starting"}`)
	profile("Bad", `{}`)
	profile("foreignfile", `{}`)
	profile("foreignlink", `{}`)
	profile("stagingtoo", `{"gateway_state":"running"}`)
	profile("renderfails", `{}`)
	profile("default", `{}`)
	must(os.MkdirAll(filepath.Join(home, "profiles", "nosoul"), 0o755))
	must(os.Symlink(filepath.Join(home, "profiles", "alpha"), filepath.Join(home, "profiles", "linked")))

	r, err := NewRenderer(Templates{Run: `#!/bin/sh
{{if eq .Name "renderfails"}}{{.NoSuchField}}{{end}}exec sleep 1
`}, nil, home, "")
	must(err)
	files := func(name string) []s6.File {
		t.Helper()
		p, _, err := (&Controller{loader: loaderFor(home)}).loader.LoadProfile(name)
		must(err)
		f, err := r.Render(p)
		must(err)
		return f
	}
	must(s6.CreateSlot(scandir, "gateway-alpha", files("alpha"), false, nil))
	must(s6.CreateSlot(scandir, "gateway-beta", files("beta"), false, nil))
	orphan := files("alpha")
	must(s6.CreateSlot(scandir, "gateway-orphan", orphan, true, nil))
	must(s6.CreateSlot(scandir, "gateway-nosoul", orphan, true, nil))
	must(os.WriteFile(filepath.Join(scandir, "gateway-foreignfile"), []byte("x"), 0o644))
	must(os.Symlink("/", filepath.Join(scandir, "gateway-foreignlink")))
	must(os.Mkdir(filepath.Join(scandir, ".gateway-stagingtoo.tmp"), 0o755))
	must(os.Mkdir(filepath.Join(scandir, ".gateway-zz.tmp"), 0o755))

	c := New(Options{
		HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(root, "run"),
		Services: nopS6{}, Scanner: nopS6{}, Renderer: r, Log: logr.Discard(),
		Now: func() time.Time { return t0 },
	})
	return c, home
}

// TestOnePath: the full pass and the per-key reconcile decide the same for every key, on the
// boot pass and at runtime, because both build the snapshot in Controller.snapshot and plan it
// with PlanProfile. The table pins what that one decision is.
func TestOnePath(t *testing.T) {
	want := map[string][]string{
		"default":     {"create gateway-default (up)"},
		"alpha":       nil, // slot up, unsupervised: rescan below
		"beta":        nil,
		"gamma":       {"create gateway-gamma (down)"},
		"Bad":         nil, // invalid name: reported, skipped
		"foreignfile": nil, // foreign entry under the slot name: reported, never touched
		"foreignlink": nil,
		"stagingtoo":  {"clean-staging .gateway-stagingtoo.tmp", "create gateway-stagingtoo (up)"},
		"renderfails": nil, // render failure: reported, skipped
		"nosoul":      nil, // its directory still exists (no SOUL.md): the slot is kept
		"orphan":      {"unregister gateway-orphan"},
		"zz":          {"clean-staging .gateway-zz.tmp"},
		"linked":      nil, // symlinked profile dir: reported, skipped
	}
	runtimeExtra := map[string][]string{
		"alpha": {"rescan gateway-alpha"},
		"beta":  {"mark gateway-beta +down", "rescan gateway-beta"},
	}
	bootExtra := map[string][]string{
		"alpha": {"rescan gateway-alpha"},
		"beta":  {"mark gateway-beta +down", "rescan gateway-beta"},
	}
	for _, boot := range []bool{false, true} {
		name := "runtime"
		extra := runtimeExtra
		if boot {
			name, extra = "boot", bootExtra
		}
		t.Run(name, func(t *testing.T) {
			c, _ := onePathVolume(t)
			r := c.openRoots()
			defer r.close()
			l, full := c.plan(r, c.settings(), boot, t0)
			if len(full) != len(want) {
				t.Errorf("the full pass looked at %d keys %v, want %d", len(full), l.keys, len(want))
			}
			for _, p := range full {
				perKey, d := c.look(r, p.Name, boot, t0)
				got := actionStrings(p.Actions)
				if boot && p.Profile != nil {
					got = got[1:] // the boot pass's clean-stale comes first
				}
				if diff := cmp.Diff(actionStrings(d.Actions), got, equateNil); diff != "" {
					t.Errorf("%s: per-key and full pass disagree (-per-key +full):\n%s", p.Name, diff)
				}
				if (perKey.problem == nil) != (p.problem == nil) || (perKey.Foreign == nil) != (p.Foreign == nil) {
					t.Errorf("%s: per-key and full pass report differently: %v/%v vs %v/%v", p.Name, perKey.problem, perKey.Foreign, p.problem, p.Foreign)
				}
				w, ok := want[p.Name]
				if !ok {
					t.Errorf("unexpected key %q", p.Name)
					continue
				}
				if e := extra[p.Name]; e != nil {
					w = e
				}
				if diff := cmp.Diff(w, got, equateNil); diff != "" {
					t.Errorf("%s: actions (-want +got):\n%s", p.Name, diff)
				}
			}
			for _, k := range []string{"Bad", "linked", "renderfails"} {
				if lk, _ := c.look(r, k, boot, t0); lk.problem == nil {
					t.Errorf("%s: no problem reported", k)
				}
			}
			for _, k := range []string{"foreignfile", "foreignlink"} {
				if lk, _ := c.look(r, k, boot, t0); lk.Foreign == nil {
					t.Errorf("%s: foreign entry not reported", k)
				}
			}
		})
	}
}

func loaderFor(home string) desired.Loader { return desired.Loader{Home: home} }

// TestLongNameOneProblem: an entry whose name can have no slot (NAME_MAX) gets its name's
// problem only, never a second "file name too long" from looking for its slot.
func TestLongNameOneProblem(t *testing.T) {
	c, home := onePathVolume(t)
	long := strings.Repeat("a", 250)
	dir := filepath.Join(home, "profiles", long)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.openRoots()
	defer r.close()
	lk, d := c.look(r, long, false, t0)
	if lk.problem == nil || !strings.Contains(lk.problem.Err.Error(), "bytes, at most") {
		t.Fatalf("problem = %v, want the name's length", lk.problem)
	}
	if lk.Foreign != nil || lk.Slot != nil || len(d.Actions) != 0 {
		t.Errorf("slot side: foreign %v, slot %v, actions %v", lk.Foreign, lk.Slot, actionStrings(d.Actions))
	}
	rep := c.Pass(context.Background(), false, true)
	n := 0
	for _, p := range rep.Problems {
		if p.Name == long {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d problems for the long name, want 1: %v", n, rep.Problems)
	}
}

// TestOnePathMultiplex: under the multiplex topology too, the full pass (which plans the root
// after every folded profile) and the per-key path (which reads the controller's aggregate)
// decide the same for every key, and the boot lines say which profiles are folded into the root.
func TestOnePathMultiplex(t *testing.T) {
	want := map[string][]string{
		// Its own state says stopped, but alpha (folded) wants running.
		"default":     {"create gateway-default (up)"},
		"alpha":       {"mark gateway-alpha +down", "rescan gateway-alpha"}, // folded: kept down
		"beta":        {"mark gateway-beta +down", "rescan gateway-beta"},
		"gamma":       {"create gateway-gamma (down)"}, // folded (its config.yaml is invalid)
		"Bad":         nil,
		"foreignfile": nil,
		"foreignlink": nil,
		"stagingtoo":  {"clean-staging .gateway-stagingtoo.tmp", "create gateway-stagingtoo (up)"}, // standalone
		"renderfails": nil,
		"nosoul":      nil,
		"orphan":      {"unregister gateway-orphan"},
		"zz":          {"clean-staging .gateway-zz.tmp"},
		"linked":      nil,
	}
	folded := map[string]bool{"alpha": true}
	for _, boot := range []bool{false, true} {
		t.Run(map[bool]string{false: "runtime", true: "boot"}[boot], func(t *testing.T) {
			c, home := onePathVolume(t)
			c.opts.Topology = Multiplex
			write := func(path, data string) {
				t.Helper()
				if err := os.WriteFile(filepath.Join(home, path), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("gateway_state.json", `{"desired_state":"stopped"}`)
			write("profiles/stagingtoo/config.yaml", "gateway:\n  standalone: true\n")
			write("profiles/gamma/config.yaml", "gateway: [\n")
			r := c.openRoots()
			defer r.close()
			l, full := c.plan(r, c.settings(), boot, t0)
			if len(full) != len(want) {
				t.Errorf("the full pass looked at %d keys %v, want %d", len(full), l.keys, len(want))
			}
			for _, p := range full {
				_, d := c.look(r, p.Name, boot, t0)
				got := actionStrings(p.Actions)
				if boot && p.Profile != nil {
					got = got[1:]
				}
				if diff := cmp.Diff(actionStrings(d.Actions), got, equateNil); diff != "" {
					t.Errorf("%s: per-key and full pass disagree (-per-key +full):\n%s", p.Name, diff)
				}
				if diff := cmp.Diff(want[p.Name], got, equateNil); diff != "" {
					t.Errorf("%s: actions (-want +got):\n%s", p.Name, diff)
				}
				if p.Profile != nil && foldedIntoRoot(p.Input, p.Decision) != folded[p.Name] {
					t.Errorf("%s: folded_into_root %v, want %v", p.Name, foldedIntoRoot(p.Input, p.Decision), folded[p.Name])
				}
			}
			if lk, _ := c.look(r, "gamma", boot, t0); !strings.Contains(lk.gwConfig.Warning, "config.yaml") || !lk.Folded {
				t.Errorf("gamma: config %+v folded %v, want a warning and folded", lk.gwConfig, lk.Folded)
			}
			rep := c.Pass(context.Background(), boot, true)
			for _, line := range rep.Lines {
				if line.FoldedIntoRoot != folded[line.Profile] {
					t.Errorf("line %s: folded_into_root %v, want %v", line.Profile, line.FoldedIntoRoot, folded[line.Profile])
				}
			}
		})
	}
}

// TestPerProfileReadsNoConfig: under the default topology, a profile's config.yaml is never
// read, even when it says standalone or is invalid, and nothing is counted.
func TestPerProfileReadsNoConfig(t *testing.T) {
	c, home := onePathVolume(t)
	if err := os.WriteFile(filepath.Join(home, "profiles/gamma/config.yaml"), []byte("gateway: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.openRoots()
	defer r.close()
	_, full := c.plan(r, c.settings(), false, t0)
	for _, p := range full {
		if p.gwConfig != (desired.GatewayConfig{}) || p.Folded || p.Standalone || p.Folds != nil {
			t.Errorf("%s: topology input %+v / %+v under perProfile", p.Name, p.Fold, p.gwConfig)
		}
	}
	if len(c.topo.folds) != 0 {
		t.Errorf("contributions counted under perProfile: %v", c.topo.folds)
	}
}
