package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

func TestConfigDecode(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    Config
		wantErr string
	}{
		{name: "empty file", yaml: "", want: Config{}},
		{name: "only comments", yaml: "# nothing\n", want: Config{}},
		{name: "explicit null document", yaml: "~\n", want: Config{}},
		{
			name: "every field",
			yaml: `hermesHome: /data
scandir: /srv/scan
s6BinDir: /usr/bin
runtimeDir: /run/pc
resyncPeriod: 1m30s
settlePeriod: 20s
minUptime: 5s
unregisterTimeout: 3s
commandTimeout: 2s
servicesMax: 400
gatewayUser: hermes
extraEnv:
  TZ: UTC
  PORT: "8080"
topology: multiplex
multiplex:
  fallback: ownSlot
templates:
  run: |
    #!/bin/sh
    exec hermes
  finish: "#!/bin/sh\nexit 0\n"
  logRun: '#!/bin/sh'
metricsAddr: "127.0.0.1:9464"
logFormat: console
verbosity: 2
`,
			want: Config{
				HermesHome: "/data", Scandir: "/srv/scan", S6BinDir: "/usr/bin", RuntimeDir: "/run/pc",
				ResyncPeriod: dur(90 * time.Second), SettlePeriod: dur(20 * time.Second), MinUptime: dur(5 * time.Second),
				UnregisterTimeout: dur(3 * time.Second), CommandTimeout: dur(2 * time.Second),
				ServicesMax: 400, GatewayUser: "hermes", ExtraEnv: map[string]string{"TZ": "UTC", "PORT": "8080"},
				Topology: "multiplex", Multiplex: Multiplex{Fallback: "ownSlot"},
				Templates:   Templates{Run: "#!/bin/sh\nexec hermes\n", Finish: "#!/bin/sh\nexit 0\n", LogRun: "#!/bin/sh"},
				MetricsAddr: "127.0.0.1:9464", LogFormat: "console", Verbosity: 2,
			},
		},
		{
			name:    "unknown field with line and suggestion",
			yaml:    "hermesHome: /x\nscandir: /y\n\nresyncPeriood: 10s\n",
			wantErr: `line 4: unknown field "resyncPeriood" (did you mean "resyncPeriod"?)`,
		},
		{
			name:    "unknown field too far from any known one",
			yaml:    "# comment\nbanana: 1\n",
			wantErr: `line 2: unknown field "banana"`,
		},
		{
			name:    "unknown field differing only in case",
			yaml:    "HERMESHOME: /x\n",
			wantErr: `line 1: unknown field "HERMESHOME" (did you mean "hermesHome"?)`,
		},
		{
			name:    "quoted unknown key",
			yaml:    "scandir: /y\n'gatewayUsr': hermes\n",
			wantErr: `line 2: unknown field "gatewayUsr" (did you mean "gatewayUser"?)`,
		},
		{
			name:    "nested unknown field, not confused by a block scalar line",
			yaml:    "templates:\n  run: |\n    rnu: x\n  rnu: y\n",
			wantErr: `line 4: unknown field "templates.rnu" (did you mean "templates.run"?)`,
		},
		{
			name:    "several problems in source order, one line each",
			yaml:    "zzz: 1\nscandr: /x\n",
			wantErr: "line 1: unknown field \"zzz\"\nline 2: unknown field \"scandr\" (did you mean \"scandir\"?)",
		},
		{
			name:    "flow style keeps the line",
			yaml:    "{hermesHome: /x, bogus: 1}\n",
			wantErr: `line 1: unknown field "bogus"`,
		},
		{
			name:    "a BOM does not hide the line",
			yaml:    "\ufeffscandr: /x\n",
			wantErr: `line 1: unknown field "scandr" (did you mean "scandir"?)`,
		},
		{
			name:    "duplicate key",
			yaml:    "scandir: /a\nhermesHome: /h\nscandir: /b\n",
			wantErr: `line 3: duplicate field "scandir" (first set at line 1)`,
		},
		{
			name:    "duplicate nested key",
			yaml:    "templates:\n  run: a\n  run: b\n",
			wantErr: `line 3: duplicate field "templates.run" (first set at line 2)`,
		},
		{
			name:    "bad duration",
			yaml:    "scandir: /s\nsettlePeriod: 10 seconds\n",
			wantErr: `line 2: field "settlePeriod": invalid duration "10 seconds" (use a form such as "10s" or "1m30s")`,
		},
		{
			name:    "negative duration",
			yaml:    "minUptime: -1s\n",
			wantErr: `line 1: field "minUptime": invalid duration "-1s": must not be negative`,
		},
		{
			name:    "bare number for a duration",
			yaml:    "resyncPeriod: 10\n",
			wantErr: `line 1: field "resyncPeriod": expected a duration such as "10s" or "1m30s", got 10`,
		},
		{
			name:    "mapping for a duration",
			yaml:    "resyncPeriod: {s: 1}\n",
			wantErr: `line 1: field "resyncPeriod": expected a duration such as "10s" or "1m30s", got a mapping`,
		},
		{name: "zero duration means default", yaml: "resyncPeriod: 0s\n", want: Config{}},
		{
			name:    "number for a string",
			yaml:    "gatewayUser: 10000\n",
			wantErr: `line 1: field "gatewayUser": expected a string, got a number; quote the value so YAML reads it as a string`,
		},
		{
			name:    "octal-looking number for a string",
			yaml:    "extraEnv:\n  UMASK: 0755\n",
			wantErr: `line 2: field "extraEnv.UMASK": expected a string, got a number; quote the value so YAML reads it as a string`,
		},
		{
			name:    "boolean in extraEnv",
			yaml:    "extraEnv:\n  DEBUG: true\n",
			wantErr: `line 2: field "extraEnv.DEBUG": expected a string, got a boolean; quote the value so YAML reads it as a string`,
		},
		{
			// YAML 1.2 (yaml.v3) reads yes as text: kept exactly as written, never turned into "true".
			name: "YAML 1.1 boolean words stay text",
			yaml: "extraEnv:\n  DEBUG: yes\n  QUIET: off\n",
			want: Config{ExtraEnv: map[string]string{"DEBUG": "yes", "QUIET": "off"}},
		},
		{
			name:    "string for an integer",
			yaml:    "servicesMax: lots\n",
			wantErr: `line 1: field "servicesMax": expected an integer, got a string`,
		},
		{
			name:    "fraction for an integer",
			yaml:    "servicesMax: 1.5\n",
			wantErr: `line 1: field "servicesMax": expected an integer, got 1.5`,
		},
		{
			name:    "list for a mapping",
			yaml:    "extraEnv: [A]\n",
			wantErr: `line 1: field "extraEnv": expected a mapping, got a list`,
		},
		{
			name:    "scalar for templates",
			yaml:    "templates: x\n",
			wantErr: `line 1: field "templates": expected a mapping, got a string`,
		},
		{
			name:    "top level not a mapping",
			yaml:    "- a\n- b\n",
			wantErr: `line 1: the top level: expected a mapping of fields, got a list`,
		},
		{
			name:    "second document",
			yaml:    "---\nscandir: /a\n---\nscandir: /b\n",
			wantErr: `line 3: a second YAML document starts here; put everything in one`,
		},
		{
			name:    "syntax error",
			yaml:    "scandir: [\n",
			wantErr: `line 1: invalid YAML: did not find expected node content`,
		},
		{
			name:    "tab indentation",
			yaml:    "templates:\n\trun: x\n",
			wantErr: `line 2: invalid YAML: found character that cannot start any token`,
		},
		{
			name:    "not UTF-8",
			yaml:    "scandir: /\xff\n",
			wantErr: `invalid YAML: invalid leading UTF-8 octet`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeConfig([]byte(tt.yaml))
			expectConfig(t, "decodeConfig()", got, err, tt.want, tt.wantErr)
		})
	}
}

// TestConfigDecodeEveryProblemAtOnce: unknown fields, duplicate keys, type errors and
// malformed values are all reported by one decode, one line each, in line order; a duplicate
// key does not hide the other problems of its mapping.
func TestConfigDecodeEveryProblemAtOnce(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown field and type error together",
			yaml: "resyncPeriood: 1s\nservicesMax: lots\n",
			want: []string{
				`line 1: unknown field "resyncPeriood" (did you mean "resyncPeriod"?)`,
				`line 2: field "servicesMax": expected an integer, got a string`,
			},
		},
		{
			name: "a duplicate key does not hide its siblings",
			yaml: "scandir: /a\nbogus: 1\nservicesMax: lots\nscandir: /b\nsettlePeriod: soon\ngatewayUser: 1\n",
			want: []string{
				`line 2: unknown field "bogus"`,
				`line 3: field "servicesMax": expected an integer, got a string`,
				`line 4: duplicate field "scandir" (first set at line 1)`,
				`line 5: field "settlePeriod": invalid duration "soon" (use a form such as "10s" or "1m30s")`,
				`line 6: field "gatewayUser": expected a string, got a number; quote the value so YAML reads it as a string`,
			},
		},
		{
			name: "problems at every level",
			yaml: "templates:\n  rnu: x\n  run: a\n  run: b\n  logRun: [x]\nextraEnv:\n  A: 1\n  B: ok\nverbosity: loud\nlogFormt: json\n",
			want: []string{
				`line 2: unknown field "templates.rnu" (did you mean "templates.run"?)`,
				`line 4: duplicate field "templates.run" (first set at line 3)`,
				`line 5: field "templates.logRun": expected a string, got a list`,
				`line 7: field "extraEnv.A": expected a string, got a number; quote the value so YAML reads it as a string`,
				`line 9: field "verbosity": expected an integer, got a string`,
				`line 10: unknown field "logFormt" (did you mean "logFormat"?)`,
			},
		},
		{
			name: "a second document and a problem in the first",
			yaml: "scandr: /x\n---\nscandir: /y\n",
			want: []string{
				`line 1: unknown field "scandr" (did you mean "scandir"?)`,
				`line 2: a second YAML document starts here; put everything in one`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeConfig([]byte(tt.yaml))
			if err == nil {
				t.Fatal("decodeConfig() succeeded, want errors")
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("decodeConfig() problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigSuggest(t *testing.T) {
	names := []string{"hermesHome", "logFormat", "resyncPeriod", "scandir"}
	tests := []struct{ key, want string }{
		{"resyncPeriood", "resyncPeriod"},
		{"scandr", "scandir"},
		{"ScanDir", "scandir"},
		{"hermes_home", "hermesHome"},
		{"logformats", "logFormat"},
		{"format", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.key, names); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// FuzzDecodeConfig: arbitrary bytes never panic; every problem is one non-empty line; an
// accepted config re-encodes and decodes to the same value.
func FuzzDecodeConfig(f *testing.F) {
	for _, s := range []string{
		"", "scandir: /x\n", "resyncPeriood: 1s\n", "scandir: /a\nscandir: /b\n", "{a: 1}",
		"templates:\n  run: |\n    #!/bin/sh\n    exec x\n", "extraEnv:\n  A: \"1\"\n  B: 'x y'\n",
		"resyncPeriod: 1m30s\nservicesMax: 5\nverbosity: -1\n", "---\n---\n", "- a\n", "\"k\": v\n",
		"scandir: &a /x\nservicesMax: *a\n", "<<: {scandir: /x}\n", "templates:\n  run: a\n  run: b\n  rnu: c\n",
	} {
		f.Add([]byte(s))
	}
	if paths, _ := filepath.Glob("../../config/samples/*.yaml"); len(paths) > 0 {
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := decodeConfig(src)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.TrimSpace(line) == "" || strings.ContainsRune(line, '\r') {
					t.Fatalf("problem is not one non-empty line: %q in %q", line, err)
				}
			}
			return
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", cfg, err)
		}
		again, err := decodeConfig(out)
		if err != nil {
			t.Fatalf("decode of re-encoded config failed: %v\n%s", err, out)
		}
		if len(cfg.ExtraEnv) == 0 && len(again.ExtraEnv) == 0 {
			cfg.ExtraEnv, again.ExtraEnv = nil, nil // omitempty drops an empty map
		}
		if diff := cmp.Diff(cfg, again); diff != "" {
			t.Fatalf("round trip changed the config (-first +second):\n%s\n%s", diff, out)
		}
	})
}
