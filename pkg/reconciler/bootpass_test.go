package reconciler_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

// staleCleaner is a clean-stale batch that records the profiles it cleaned and fails for one.
type staleCleaner struct {
	failFor string
	cleaned *[]string
}

func (s staleCleaner) CleanStale(p string) ([]string, error) {
	*s.cleaned = append(*s.cleaned, p)
	if p == s.failFor {
		return nil, errors.New("stale file in the way")
	}
	return nil, nil
}

func (staleCleaner) Close() {}

// TestBootPassOverConvergedProfiles: a boot pass over converged profiles does nothing but their
// clean-stale (no s6 call), remembers every profile (the pass commits a key whose only action
// is its clean-stale at once, without holding its look for the batch), and a failed clean-stale
// is a warning of the pass, never the profile's failure.
func TestBootPassOverConvergedProfiles(t *testing.T) {
	opts, names, fake := convergedOptions(t, 3, nil)
	var cleaned []string
	failFor := names[2]
	opts.CleanStale = func() (reconciler.StaleBatch, error) {
		return staleCleaner{failFor: failFor, cleaned: &cleaned}, nil
	}
	rep := reconciler.New(opts).Pass(context.Background(), true, false)
	if rep.Err != nil {
		t.Fatalf("boot pass: %v", rep.Err)
	}
	if fake.calls.Load() != 0 {
		t.Errorf("%d s6 calls, want none", fake.calls.Load())
	}
	if len(rep.Actions) != len(names) {
		t.Errorf("actions %v, want one clean-stale per profile", rep.Actions)
	}
	for _, a := range rep.Actions {
		if a.Kind != reconciler.CleanStale {
			t.Errorf("action %s on a converged volume", a)
		}
	}
	if len(cleaned) != len(names) {
		t.Errorf("cleaned %q, want %q", cleaned, names)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].Error(), "stale file in the way") {
		t.Errorf("warnings %v, want the one failed clean-stale", rep.Warnings)
	}
	for _, l := range rep.Lines {
		if l.Err != nil {
			t.Errorf("line of %s: %v", l.Profile, l.Err)
		}
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(opts.RuntimeDir, "memory", "m-"+n)); err != nil {
			t.Errorf("memory of %s not saved: %v", n, err)
		}
	}
}

// TestBootPassFlushesMemoryAsItGoes: a boot pass over converged profiles writes their memory
// files in batches as it commits them, so it never holds every profile's record until its end.
func TestBootPassFlushesMemoryAsItGoes(t *testing.T) {
	reconciler.SetPassFlushBatch(t, 2)
	opts, names, _ := convergedOptions(t, 5, nil)
	saved := -1 // memory files on disk when the batch starts (after every commit, before the last flush)
	opts.CleanStale = func() (reconciler.StaleBatch, error) {
		entries, err := os.ReadDir(filepath.Join(opts.RuntimeDir, "memory"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		saved = 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "m-") {
				saved++
			}
		}
		var cleaned []string
		return staleCleaner{cleaned: &cleaned}, nil
	}
	if rep := reconciler.New(opts).Pass(context.Background(), true, false); rep.Err != nil {
		t.Fatalf("boot pass: %v", rep.Err)
	}
	keys := len(names) // the root's included
	if saved < keys-1 {
		t.Errorf("%d of %d memory files saved before the pass's end, want all but the last batch's (at most 1 left)", saved, keys)
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(opts.RuntimeDir, "memory", "m-"+n)); err != nil {
			t.Errorf("memory of %s not saved: %v", n, err)
		}
	}
}
