package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// errNoChange is returned by an edit whose s6 want change was not seen in time.
var errNoChange = errors.New("s6 want did not change in time")

// editor flips profiles' desired_state the way an operator does (temp file + rename) and times
// each flip until supervise/status shows the new want.
type editor struct {
	w       *world
	rng     *rand.Rand
	timeout time.Duration
}

func newEditor(w *world, seed uint64, timeout time.Duration) *editor {
	return &editor{w: w, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), timeout: timeout}
}

// pick returns a random profile among names.
func (ed *editor) pick(names []string) string { return names[ed.rng.IntN(len(names))] }

// gap sleeps a random time in [lo, hi): the pause between two edits.
func (ed *editor) gap(lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(ed.rng.Int64N(int64(hi-lo)+1)))
}

// flip writes the opposite of the slot's current want into the profile's desired_state and
// returns the time from the rename into place until supervise/status shows the new want (read
// on every inotify event in supervise/). A change not seen within the timeout returns the
// timeout and errNoChange.
func (ed *editor) flip(name string) (time.Duration, error) {
	slot := filepath.Join(ed.w.scandir, "gateway-"+name)
	st := readSlotStatus(slot)
	if !st.ok {
		return 0, fmt.Errorf("flip %s: no status in %s", name, slot)
	}
	want := !st.wantUp
	desired := "stopped"
	if want {
		desired = "running"
	}
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return 0, fmt.Errorf("inotify: %w", err)
	}
	defer unix.Close(ino)
	if _, err := unix.InotifyAddWatch(ino, filepath.Join(slot, "supervise"), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE); err != nil {
		return 0, fmt.Errorf("inotify %s: %w", slot, err)
	}
	dir := ed.w.profileDir(name)
	tmp := filepath.Join(dir, ".bench-edit.tmp")
	data := []byte(`{"gateway_state":"running","desired_state":"` + desired + `"}`)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := os.Rename(tmp, filepath.Join(dir, "gateway_state.json")); err != nil {
		return 0, err
	}
	deadline := t0.Add(ed.timeout)
	buf := make([]byte, 4096)
	for {
		if s := readSlotStatus(slot); s.ok && s.wantUp == want {
			return time.Since(t0), nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ed.timeout, fmt.Errorf("flip %s to %s: %w", name, desired, errNoChange)
		}
		fds := []unix.PollFd{{Fd: int32(ino), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, err
		}
		for {
			if n, err := unix.Read(ino, buf); n <= 0 || err != nil {
				break
			}
		}
	}
}

// latencies is a run of edits: the times, in seconds, and how many were not seen in time.
type latencies struct {
	samples []float64
	missed  int
}

func (l *latencies) add(d time.Duration, err error) error {
	switch {
	case err == nil:
	case errors.Is(err, errNoChange):
		l.missed++
	default:
		return err
	}
	l.samples = append(l.samples, d.Seconds())
	return nil
}
