package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// goldenNow is the time every golden output counts ages to.
var goldenNow = time.Date(2026, 5, 29, 8, 0, 0, 0, time.UTC)

func ago(d time.Duration) string { return goldenNow.Add(-d).Format(time.RFC3339) }

// golden compares got with testdata/<name>.golden (or rewrites it under -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

// fixedProfiles covers every phase and note the views show.
func fixedProfiles() map[string]reconciler.ProfileStatus {
	base := func(name, intent, prior string, port int) reconciler.ProfileStatus {
		return reconciler.ProfileStatus{
			Profile: name, Slot: "gateway-" + name, Intent: intent, BootIntent: intent, PriorState: prior,
			Port: port, SlotExists: true, Supervised: true, PID: -1, ExitCode: -1, Signal: -1, ServedBy: "gateway-" + name,
		}
	}
	def := base("default", "hold", "None", 9449)
	def.BootIntent, def.Phase, def.ExitCode, def.Since = "down", "Stopped", 0, ago(50*time.Hour)

	coder := base("coder", "up", "running", 9570)
	coder.DesiredState, coder.GatewayState = "running", "running"
	coder.Up, coder.WantUp, coder.NormallyUp, coder.Ready, coder.PID = true, true, true, true, 4242
	coder.Phase, coder.Since = "Running", ago(5*time.Minute)

	writer := base("writer", "up", "running", 9543)
	writer.GatewayState, writer.NormallyUp, writer.ExitCode = "running", true, 1
	writer.Phase, writer.Since, writer.Deaths = "Settling", ago(8*time.Second), 1
	writer.Pending = "Settling: start at 2026-05-29T08:00:07Z"
	writer.Drift = []string{"run", "log/run"}
	writer.Actions = []string{"update gateway-writer run,log/run"}
	writer.PortConflict = []string{"other"}

	fatal := base("fatal", "up", "running", 9611)
	fatal.DesiredState, fatal.GatewayState, fatal.NormallyUp = "running", "startup_failed", true
	fatal.ExitCode, fatal.Phase, fatal.Since, fatal.Deaths = 78, "CrashLoopBackOff", ago(3*time.Hour+20*time.Minute), 3
	fatal.CrashLoopFailures, fatal.NextStart = 2, "2026-05-29T08:00:20Z"

	late := base("late", "up", "running", 9702)
	late.SlotExists, late.Supervised, late.Phase = false, false, "Unregistered"
	late.DesiredState = "running"
	late.Actions = []string{"create gateway-late (up)"}

	lost := base("lost", "down", "stopped", 9455)
	lost.Supervised, lost.Phase = false, "Unsupervised"
	lost.Warning = `gateway_state.json: desired_state "sleep" is not running or stopped`

	broken := base("broken", "up", "running", 9480)
	broken.Phase, broken.Up, broken.WantUp, broken.PID, broken.Since = "Running", true, true, 777, ago(40*time.Second)
	broken.Error = "read supervision of /run/service/gateway-broken: permission denied"

	orphan := base("orphan", "none", "None", 0)
	orphan.Phase, orphan.Signal, orphan.Since = "Orphaned", 9, ago(26*time.Hour)
	orphan.Actions = []string{"unregister gateway-orphan"}
	orphan.BootIntent, orphan.ServedBy = "none", ""
	return map[string]reconciler.ProfileStatus{
		"default": def, "coder": coder, "writer": writer, "fatal": fatal, "late": late,
		"lost": lost, "broken": broken, "orphan": orphan,
	}
}

func fixedReport() reconciler.StatusReport {
	ps := fixedProfiles()
	rep := reconciler.StatusReport{
		Problems: []reconciler.ProblemStatus{{Name: "Bad_Name", Path: "/opt/data/profiles/Bad_Name", Error: `invalid profile name "Bad_Name"`}},
		Foreign:  []reconciler.ProblemStatus{{Name: "gateway-evil", Error: "symlink"}},
		Staging:  []string{".gateway-late.tmp"},
	}
	for _, n := range []string{"default", "broken", "coder", "fatal", "late", "lost", "writer", "orphan"} {
		rep.Profiles = append(rep.Profiles, ps[n])
	}
	return rep
}

func TestStatusTableGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		wide bool
	}{{"status_table", false}, {"status_wide", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printStatusTable(&b, fixedReport(), goldenNow, tt.wide); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestStatusDocumentGolden(t *testing.T) {
	rep := fixedReport()
	rep.Profiles = rep.Profiles[:3] // enough to pin the shape
	var b bytes.Buffer
	if err := writeDocument(&b, "json", newStatusDocument(rep)); err != nil {
		t.Fatal(err)
	}
	golden(t, "status_json", b.Bytes())
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["apiVersion"] != "profile-controller/v1" || doc["kind"] != "StatusReport" || doc["healthy"] != false {
		t.Errorf("document header = %v %v %v", doc["apiVersion"], doc["kind"], doc["healthy"])
	}
}

func TestStatusUnhealthy(t *testing.T) {
	ps := fixedProfiles()
	tests := []struct {
		name string
		rep  reconciler.StatusReport
		want []unhealthyItem
	}{
		{name: "empty", want: []unhealthyItem{}},
		{
			name: "running, stopped, settling, unregistered and orphaned are healthy",
			rep: reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{
				ps["coder"], ps["default"], ps["writer"], ps["late"], ps["orphan"],
			}},
			want: []unhealthyItem{},
		},
		{
			name: "foreign entries do not count",
			rep:  reconciler.StatusReport{Foreign: []reconciler.ProblemStatus{{Name: "gateway-x", Error: "symlink"}}},
			want: []unhealthyItem{},
		},
		{name: "crash loop", rep: reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{ps["fatal"]}},
			want: []unhealthyItem{{"fatal", "CrashLoopBackOff", "2 failures, next start 2026-05-29T08:00:20Z"}}},
		{name: "unsupervised", rep: reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{ps["lost"]}},
			want: []unhealthyItem{{"lost", "Unsupervised", "no s6-supervise runs the slot"}}},
		{name: "error", rep: reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{ps["broken"]}},
			want: []unhealthyItem{{"broken", "Error", "read supervision of /run/service/gateway-broken: permission denied"}}},
		{name: "problem entry", rep: reconciler.StatusReport{Problems: []reconciler.ProblemStatus{{Name: "-", Error: "profiles root not listed"}}},
			want: []unhealthyItem{{"-", "Skipped", "profiles root not listed"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, unhealthy(tt.rep)); diff != "" {
				t.Errorf("unhealthy() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusAge(t *testing.T) {
	tests := []struct {
		since string
		want  string
	}{
		{"", "-"},
		{"yesterday", "-"},
		{ago(0), "0s"},
		{ago(45 * time.Second), "45s"},
		{ago(5 * time.Minute), "5m"},
		{ago(5*time.Minute + 30*time.Second), "5m30s"},
		{ago(3 * time.Hour), "3h"},
		{ago(50 * time.Hour), "2d2h"},
		{ago(400 * 24 * time.Hour), "400d"},
	}
	for _, tt := range tests {
		if got := age(tt.since, goldenNow); got != tt.want {
			t.Errorf("age(%q) = %q, want %q", tt.since, got, tt.want)
		}
	}
}

func TestStatusStateText(t *testing.T) {
	ps := fixedProfiles()
	tests := []struct {
		profile string
		want    string
	}{
		{"coder", "up"},
		{"default", "down (exit 0)"},
		{"fatal", "down (exit 78)"},
		{"orphan", "down (signal 9)"},
		{"late", "-"},
		{"lost", "unsupervised"},
	}
	for _, tt := range tests {
		if got := stateText(ps[tt.profile]); got != tt.want {
			t.Errorf("stateText(%s) = %q, want %q", tt.profile, got, tt.want)
		}
	}
	p := ps["coder"]
	p.WantUp = false
	if got := stateText(p); got != "up, want down" {
		t.Errorf("stateText(up, want down) = %q", got)
	}
}

func TestStatusSelectProfiles(t *testing.T) {
	rep := fixedReport()
	tests := []struct {
		name        string
		names       []string
		wantNames   []string
		wantMissing []string
		wantExtra   int // problem + foreign + staging entries kept
	}{
		{name: "all", wantNames: []string{"default", "broken", "coder", "fatal", "late", "lost", "writer", "orphan"}, wantExtra: 3},
		{name: "one", names: []string{"coder"}, wantNames: []string{"coder"}},
		{name: "report order, duplicates once", names: []string{"writer", "coder", "writer"}, wantNames: []string{"coder", "writer"}},
		{name: "with its staging entry", names: []string{"late"}, wantNames: []string{"late"}, wantExtra: 1},
		{name: "a problem entry", names: []string{"Bad_Name"}, wantExtra: 1},
		{name: "a foreign slot", names: []string{"evil"}, wantExtra: 1},
		{name: "missing", names: []string{"coder", "nope", "nope"}, wantNames: []string{"coder"}, wantMissing: []string{"nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := selectProfiles(rep, tt.names)
			var names []string
			for _, p := range got.Profiles {
				names = append(names, p.Profile)
			}
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("profiles (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMissing, missing); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			if extra := len(got.Problems) + len(got.Foreign) + len(got.Staging); extra != tt.wantExtra {
				t.Errorf("kept %d problem/foreign/staging entries, want %d: %+v", extra, tt.wantExtra, got)
			}
		})
	}
}

func TestPlanFromStatus(t *testing.T) {
	ps := fixedProfiles()
	tests := []struct {
		name string
		rep  reconciler.StatusReport
		want []string
	}{
		{name: "nothing", rep: reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{ps["coder"]}}, want: []string{"plan: nothing to do"}},
		{
			name: "actions, pending corrections, staging",
			rep: reconciler.StatusReport{
				Profiles: []reconciler.ProfileStatus{ps["late"], ps["writer"], ps["orphan"]},
				Staging:  []string{".gateway-late.tmp"},
			},
			want: []string{
				"plan: create gateway-late (up)",
				"plan: update gateway-writer run,log/run",
				"plan: pending gateway-writer: Settling: start at 2026-05-29T08:00:07Z",
				"plan: unregister gateway-orphan",
				"plan: clean-staging .gateway-late.tmp",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, planFromStatus(tt.rep)); diff != "" {
				t.Errorf("planFromStatus() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusTableConfigLine(t *testing.T) {
	rep := fixedReport()
	rep.Config = &reconciler.ConfigStatus{Generation: 3, Rendering: "abc", AppliedAt: "2026-05-29T08:00:00Z", Changed: []string{"extraEnv"},
		Refused: "config: /etc/pc.yaml: scandir cannot change while running (restart the controller to apply it)", RefusedAt: "2026-05-29T08:01:00Z",
		RenderingDiffers: true}
	var b bytes.Buffer
	if err := printStatusTable(&b, rep, goldenNow, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := "config generation 3 (rendering abc, applied 2026-05-29T08:00:00Z, changed extraEnv); the config file renders otherwise: " +
		"not applied by the running controller; last reload refused at 2026-05-29T08:01:00Z: config: /etc/pc.yaml: scandir cannot change " +
		"while running (restart the controller to apply it)"
	if got := lines[len(lines)-1]; got != want {
		t.Errorf("last line:\n got %s\nwant %s", got, want)
	}
	sel, _ := selectProfiles(rep, []string{"coder"})
	if sel.Config != rep.Config {
		t.Error("status PROFILE drops the configuration in use")
	}
}
