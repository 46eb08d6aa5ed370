package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigLeaseRole: role and lease decode from the file, default to auto and on, take
// PROFILE_CONTROLLER_ROLE over the file and --role over both, and a bad value is one line
// naming the field (and, for a value in the file, the file and the line).
func TestConfigLeaseRole(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		env, flag string
		wantRole  string
		wantLease string
		wantErr   string
	}{
		{name: "defaults", wantRole: "auto", wantLease: "on"},
		{name: "file", file: "role: standby\nlease: off\n", wantRole: "standby", wantLease: "off"},
		{name: "unquoted on", file: "lease: on\n", wantRole: "auto", wantLease: "on"},
		{name: "env beats file", file: "role: auto\n", env: "standby", wantRole: "standby", wantLease: "on"},
		{name: "flag beats env", file: "role: standby\n", env: "standby", flag: "auto", wantRole: "auto", wantLease: "on"},
		{name: "bad role in the file", file: "role: passive\n",
			wantErr: `config: role "passive" is not one of auto, standby (set by the file, PROFILE_CONTROLLER_ROLE or --role)`},
		{name: "bad role from env", env: "owner",
			wantErr: `config: role "owner" is not one of auto, standby (set by the file, PROFILE_CONTROLLER_ROLE or --role)`},
		{name: "bad lease", file: "lease: maybe\n", wantErr: `config: lease "maybe" is not one of on, off`},
		{name: "boolean lease", file: "lease: false\n", wantErr: `line 1: field "lease": expected a string, got a boolean`},
		{name: "misspelt field", file: "leese: off\n", wantErr: `line 1: unknown field "leese" (did you mean "lease"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := globalFlags{role: tt.flag}
			if tt.file != "" {
				g.config = filepath.Join(t.TempDir(), "c.yaml")
				writeFile(t, g.config, tt.file, 0o600)
			}
			t.Setenv(EnvRole, tt.env)
			cfg, err := loadConfig(&g, func(name string) bool { return name == "role" && tt.flag != "" })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("loadConfig error %v, want one line containing %q", err, tt.wantErr)
				}
				if tt.file != "" && strings.HasPrefix(tt.wantErr, "line") && !strings.Contains(err.Error(), g.config) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Role != tt.wantRole || cfg.Lease != tt.wantLease {
				t.Errorf("role %q lease %q, want %q %q", cfg.Role, cfg.Lease, tt.wantRole, tt.wantLease)
			}
		})
	}
}
