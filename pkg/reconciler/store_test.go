package reconciler

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermes/profile-controller/pkg/desired"
)

// A key keeps its newest maxEvents events, its memory file leaves zero fields out, and what it
// holds reads back the same.
func TestMemoryFileHoldsTheNewestEventsAndNoZeroFields(t *testing.T) {
	dir := t.TempDir()
	var evs []Event
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for i := range maxEvents + 2 {
		evs = appendEvent(evs, Event{Time: t0.Add(time.Duration(i) * time.Second), Type: "Normal", Reason: "Started", Message: fmt.Sprint("event ", i)})
	}
	if len(evs) != maxEvents {
		t.Fatalf("in process: %d events, want %d", len(evs), maxEvents)
	}
	s := newStore(dir)
	s.put("coder", record{Memory: Memory{Seen: true, Intent: desired.Up}, Events: evs})
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "memory", fileName("coder")))
	if err != nil {
		t.Fatal(err)
	}
	for _, zero := range []string{"NextStart", "TerminatingSince", "Crashed", "Failures", "Killed", "0001-01-01"} {
		if strings.Contains(string(raw), zero) {
			t.Errorf("memory file holds the zero field %s: %s", zero, raw)
		}
	}
	var got *record
	newStore(dir).load(func(key string, m *record) { got = m })
	if got == nil {
		t.Fatalf("memory file not read back: %s", raw)
	}
	if !got.Seen || got.Intent != desired.Up {
		t.Errorf("memory read back as %+v", got.Memory)
	}
	if len(got.Events) != maxEvents {
		t.Fatalf("%d events read back, want %d", len(got.Events), maxEvents)
	}
	for i, ev := range got.Events {
		if want := fmt.Sprint("event ", 2+i); ev.Message != want || !ev.Time.Equal(evs[i].Time) {
			t.Errorf("event %d read back as %+v, want %q", i, ev, want)
		}
	}
}

// A flush of many keys, spread over workers with a temp file each, writes every key's own
// memory, and a later flush removes the forgotten ones and leaves the rest alone.
func TestMemoryFlushOfManyKeys(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(parallelMax))
	dir := t.TempDir()
	s := newStore(dir)
	const n = 40 * parallelChunk
	for i := range n {
		s.put(fmt.Sprint("p", i), record{Memory: Memory{Seen: true, Failures: i}})
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 2 {
		s.forget(fmt.Sprint("p", i))
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var mu sync.Mutex
	newStore(dir).load(func(key string, m *record) {
		mu.Lock()
		got[key] = m.Failures
		mu.Unlock()
	})
	if len(got) != n/2 {
		t.Errorf("%d memory files read back, want %d", len(got), n/2)
	}
	for i := 1; i < n; i += 2 {
		if f, ok := got[fmt.Sprint("p", i)]; !ok || f != i {
			t.Errorf("p%d read back as %d (present %v), want %d", i, f, ok, i)
		}
	}
}
