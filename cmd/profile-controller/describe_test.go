package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

func TestDescribeGolden(t *testing.T) {
	ps := fixedProfiles()
	tests := []struct {
		profile string
		present map[string]bool
		events  []event
	}{
		{profile: "coder", present: map[string]bool{"type": true, "run": true, "finish": true, "log/run": true}},
		// log/run is missing from the slot, run is there with other bytes.
		{profile: "writer", present: map[string]bool{"type": true, "run": true, "finish": true}},
		{profile: "fatal", present: map[string]bool{"type": true, "run": true, "finish": true, "log/run": true}},
		{profile: "late"},
		{profile: "lost", present: map[string]bool{"type": true, "run": true, "finish": true, "log/run": true}},
		{profile: "orphan", present: map[string]bool{"type": true, "run": true, "finish": true, "log/run": true},
			// What describe prints once the status report carries events.
			events: []event{
				{Time: ago(26 * 3600e9), Type: "Normal", Reason: "Created", Message: "create gateway-orphan (up)"},
				{Time: ago(90e9), Type: "Warning", Reason: "Killed", Message: "signal 9"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			desc := describe(ps[tt.profile], tt.present)
			if tt.events != nil {
				desc.Events = tt.events
			}
			var b bytes.Buffer
			if err := printDescription(&b, desc, goldenNow); err != nil {
				t.Fatal(err)
			}
			golden(t, "describe_"+tt.profile, b.Bytes())
		})
	}
}

func TestDescribeConditions(t *testing.T) {
	ps := fixedProfiles()
	status := func(cs []condition) map[string]string {
		m := map[string]string{}
		for _, c := range cs {
			m[c.Type] = c.Status + "/" + c.Reason
		}
		return m
	}
	tests := []struct {
		profile string
		want    map[string]string
	}{
		{"coder", map[string]string{
			"SlotRegistered": "True/", "Supervised": "True/", "Running": "True/", "WantedUp": "True/",
			"Ready": "True/", "FilesInSync": "True/", "Healthy": "True/",
		}},
		{"writer", map[string]string{
			"SlotRegistered": "True/", "Supervised": "True/", "Running": "False/Exited", "WantedUp": "False/",
			"Ready": "Unknown/", "FilesInSync": "False/Drifted", "Healthy": "True/",
		}},
		{"fatal", map[string]string{
			"SlotRegistered": "True/", "Supervised": "True/", "Running": "False/Exited", "WantedUp": "False/",
			"Ready": "Unknown/", "FilesInSync": "True/", "Healthy": "False/CrashLoopBackOff",
		}},
		{"late", map[string]string{
			"SlotRegistered": "False/NoSlot", "Supervised": "Unknown/", "Running": "Unknown/", "WantedUp": "Unknown/",
			"Ready": "Unknown/", "FilesInSync": "Unknown/", "Healthy": "True/",
		}},
		{"lost", map[string]string{
			"SlotRegistered": "True/", "Supervised": "False/NoSupervisor", "Running": "Unknown/", "WantedUp": "Unknown/",
			"Ready": "Unknown/", "FilesInSync": "True/", "Healthy": "False/Unsupervised",
		}},
		{"orphan", map[string]string{
			"SlotRegistered": "True/", "Supervised": "True/", "Running": "False/Killed", "WantedUp": "False/",
			"Ready": "Unknown/", "FilesInSync": "True/", "Healthy": "True/",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, status(conditions(ps[tt.profile]))); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDescribeFiles(t *testing.T) {
	all := map[string]bool{"type": true, "run": true, "finish": true, "log/run": true}
	tests := []struct {
		name    string
		ps      reconciler.ProfileStatus
		present map[string]bool
		want    []fileState
	}{
		{
			name: "no slot", ps: reconciler.ProfileStatus{},
			want: []fileState{{"type", "not created"}, {"run", "not created"}, {"finish", "not created"}, {"log/run", "not created"}, {"down", "not created"}},
		},
		{
			name: "in sync, normally up", ps: reconciler.ProfileStatus{SlotExists: true, NormallyUp: true}, present: all,
			want: []fileState{{"type", "in sync"}, {"run", "in sync"}, {"finish", "in sync"}, {"log/run", "in sync"}, {"down", "absent (normally up)"}},
		},
		{
			name: "drifted and missing, normally down", ps: reconciler.ProfileStatus{SlotExists: true, Drift: []string{"run", "finish"}},
			present: map[string]bool{"type": true, "run": true, "log/run": true},
			want:    []fileState{{"type", "in sync"}, {"run", "drifted"}, {"finish", "missing"}, {"log/run", "in sync"}, {"down", "present (normally down)"}},
		},
		{
			name: "presence unknown", ps: reconciler.ProfileStatus{SlotExists: true, Drift: []string{"type"}, NormallyUp: true},
			want: []fileState{{"type", "drifted"}, {"run", "in sync"}, {"finish", "in sync"}, {"log/run", "in sync"}, {"down", "absent (normally up)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, files(tt.ps, tt.present)); diff != "" {
				t.Errorf("files() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDescribeFolded: a profile folded into the root says which slot serves it, and a NotServed
// one has a false Served condition and makes the report unhealthy; with the fallback, its own
// slot serves it.
func TestDescribeFolded(t *testing.T) {
	p := fixedProfiles()["coder"]
	p.Folded, p.ServedBy = true, "gateway-default"
	var out strings.Builder
	if err := printDescription(&out, describe(p, nil), goldenNow); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Served by:    gateway-default (folded into the root: topology multiplex)") {
		t.Errorf("no served-by line:\n%s", out.String())
	}
	cond := func(d description) condition {
		for _, c := range d.Conditions {
			if c.Type == "Served" {
				return c
			}
		}
		t.Fatalf("no Served condition in %+v", d.Conditions)
		return condition{}
	}
	if c := cond(describe(p, nil)); c.Status != "True" {
		t.Errorf("served: condition %+v", c)
	}
	p.NotServed = true
	if c := cond(describe(p, nil)); c.Status != "False" || c.Reason != "NotServed" {
		t.Errorf("not served: condition %+v", c)
	}
	if bad := unhealthy(reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{p}}); len(bad) != 1 || bad[0].Reason != "NotServed" {
		t.Errorf("unhealthy = %+v, want NotServed", bad)
	}
	p.ServedBy = p.Slot
	if got := servedByText(p); !strings.Contains(got, "its own slot") {
		t.Errorf("fallback served-by %q", got)
	}
}
