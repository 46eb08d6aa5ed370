package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMergeWrite(t *testing.T) {
	tests := []struct {
		name   string
		onDisk *string // nil: no file
		want   map[string]any
	}{
		{
			name:   "foreign keys survive",
			onDisk: ptr(`{"desired_state":"stopped","gateway_state":"running","platforms":{"x":{"state":"connected"}},"pid":1}`),
			want: map[string]any{
				"desired_state": "stopped",
				"gateway_state": "starting",
				"platforms":     map[string]any{"x": map[string]any{"state": "connected"}},
			},
		},
		{name: "missing file starts fresh", onDisk: nil, want: map[string]any{"gateway_state": "starting"}},
		{name: "corrupt file starts fresh", onDisk: ptr(`{"desired_state":`), want: map[string]any{"gateway_state": "starting"}},
		{name: "non-object starts fresh", onDisk: ptr(`["desired_state"]`), want: map[string]any{"gateway_state": "starting"}},
		{name: "null starts fresh", onDisk: ptr(`null`), want: map[string]any{"gateway_state": "starting"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "gateway_state.json")
			if tt.onDisk != nil {
				if err := os.WriteFile(path, []byte(*tt.onDisk), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := mergeWrite(path, map[string]any{"gateway_state": "starting", "pid": 4242, "updated_at": "2026-01-02T03:04:05Z"}); err != nil {
				t.Fatalf("mergeWrite: %v", err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(string(data), "\n ") {
				t.Errorf("output is not compact JSON: %q", data)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("output is not a JSON object: %v: %q", err, data)
			}
			tt.want["pid"] = float64(4242)
			tt.want["updated_at"] = "2026-01-02T03:04:05Z"
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("state file\n got: %s\nwant: %s", gotJSON, wantJSON)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("temp files left behind: %v", entries)
			}
		})
	}
}

func ptr(s string) *string { return &s }
