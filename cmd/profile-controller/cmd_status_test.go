package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

// TestWatchStatus: the first report is shown, an unchanged one is not, a changed one is, and
// the watch ends cleanly when its context is done; a fetch error ends it with that error.
func TestWatchStatus(t *testing.T) {
	ps := fixedProfiles()
	reports := []reconciler.StatusReport{
		{Profiles: []reconciler.ProfileStatus{ps["coder"]}},
		{Profiles: []reconciler.ProfileStatus{ps["coder"]}},
		{Profiles: []reconciler.ProfileStatus{ps["coder"], ps["late"]}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ticks := make(chan time.Time)
	calls := 0
	fetch := func(context.Context) (reconciler.StatusReport, error) {
		rep := reports[calls]
		calls++
		if calls == len(reports) {
			cancel() // interrupted right after the third look
		}
		return rep, nil
	}
	type shown struct {
		profiles int
		first    bool
	}
	var got []shown
	done := make(chan error, 1)
	go func() {
		done <- watchStatus(ctx, ticks, fetch, func(rep reconciler.StatusReport, first bool) error {
			got = append(got, shown{len(rep.Profiles), first})
			return nil
		})
	}()
	ticks <- time.Time{}
	ticks <- time.Time{}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watchStatus() = %v, want nil on interrupt", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watchStatus did not return after its context was cancelled")
	}
	want := []shown{{1, true}, {2, false}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("shown %+v, want %+v", got, want)
	}

	boom := errors.New("read scandir: gone")
	err := watchStatus(context.Background(), ticks, func(context.Context) (reconciler.StatusReport, error) {
		return reconciler.StatusReport{}, boom
	}, func(reconciler.StatusReport, bool) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("watchStatus() = %v, want %v", err, boom)
	}
}
