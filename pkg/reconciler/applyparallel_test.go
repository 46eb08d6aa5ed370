package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hermes/profile-controller/pkg/s6"
)

// countingScanner counts rescans and fails them, so that a batch's pickup ends at once.
type countingScanner struct{ rescans atomic.Int32 }

var errScan = errors.New("scan refused")

func (s *countingScanner) Rescan(context.Context, string) error {
	s.rescans.Add(1)
	return errScan
}
func (s *countingScanner) RescanPrune(context.Context, string) error { return nil }

// countingStale counts clean-ups and fails p007's.
type countingStale struct{ opened, cleaned, closed atomic.Int32 }

func (s *countingStale) CleanStale(p string) ([]string, error) {
	s.cleaned.Add(1)
	if p == "p007" {
		return nil, errors.New("stale file is a FIFO")
	}
	return nil, nil
}
func (s *countingStale) Close() { s.closed.Add(1) }

// TestApplyFileWorkInParallel: a batch big enough for several workers books every action as
// a serial run would: a failed create fails its profile alone (its later actions skipped), a
// failed clean-stale is a warning and its profile's create still runs, the others are picked
// up by one rescan.
func TestApplyFileWorkInParallel(t *testing.T) {
	scandir := t.TempDir()
	const n = 200
	stale := &countingStale{}
	scan := &countingScanner{}
	e := &Executor{Scandir: scandir, Services: nopS6{}, Scanner: scan, CleanStale: func() (StaleBatch, error) {
		stale.opened.Add(1)
		return stale, nil
	}}
	var acts []Action
	exists := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("p%03d", i)
		if i%17 == 3 {
			exists[name] = true // already there: the create fails with fs.ErrExist
			if err := os.Mkdir(filepath.Join(scandir, "gateway-"+name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		acts = append(acts,
			Action{Kind: CleanStale, Profile: name},
			Action{Kind: Create, Profile: name, Slot: "gateway-" + name, Files: []s6.File{{Name: "run", Data: []byte("#!/bin/sh\n"), Mode: 0o755}}},
			Action{Kind: Start, Profile: name, Slot: "gateway-" + name})
	}
	res := e.Apply(context.Background(), acts)
	if got := scan.rescans.Load(); got != 1 {
		t.Errorf("%d rescans, want one for the batch", got)
	}
	if got := stale.cleaned.Load(); got != n {
		t.Errorf("clean-stale ran %d times, want %d", got, n)
	}
	if o, c := stale.opened.Load(), stale.closed.Load(); o != 1 || c != 1 {
		t.Errorf("HERMES_HOME opened %d times and closed %d, want once for the batch", o, c)
	}
	if len(res.Warnings) != 1 {
		t.Errorf("warnings %v, want the one failed clean-stale", res.Warnings)
	}
	if len(res.Started) != 0 {
		t.Errorf("started %v: nothing may start after a failed pickup", res.Started)
	}
	for i := range n {
		name := fmt.Sprintf("p%03d", i)
		err := res.Errors[name]
		switch {
		case exists[name]:
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("%s: %v, want its create refused (exists)", name, err)
			}
		case !errors.Is(err, errScan):
			t.Errorf("%s: %v, want the rescan's error (created, then not picked up)", name, err)
		default:
			if _, err := os.Stat(filepath.Join(scandir, "gateway-"+name, "run")); err != nil {
				t.Errorf("%s: not created: %v", name, err)
			}
		}
	}
}
