package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func dur(d time.Duration) Duration { return Duration{d} }

// testFuncs stands in for the renderer's FuncMap: Validate only parses, the renderer executes.
var testFuncs = template.FuncMap{"shquote": func(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}}

// expectConfig checks the result of call (a function returning a Config and an error): the
// error wantErr exactly when it is set, else no error and want.
func expectConfig(t *testing.T, call string, got Config, err error, want Config, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil {
			t.Fatalf("%s = %+v, want error %q", call, got, wantErr)
		}
		if err.Error() != wantErr {
			t.Fatalf("%s error\n got: %s\nwant: %s", call, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s error: %v", call, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", call, diff)
	}
}

// expectErrText checks that call returned exactly the error text want ("": no error).
func expectErrText(t *testing.T, call string, err error, want string) {
	t.Helper()
	got := ""
	if err != nil {
		got = err.Error()
	}
	if got != want {
		t.Fatalf("%s error\n got: %q\nwant: %q", call, got, want)
	}
}

// writeConfig writes a config file with the given mode (chmod, so the umask does not interfere).
func writeConfig(t *testing.T, dir, name, content string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, dir, "good.yaml", "scandir: /srv/scan\n", 0o644)
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := writeConfig(t, dir, "big.yaml", "# "+strings.Repeat("x", MaxConfigFileSize)+"\n", 0o600)
	typo := writeConfig(t, dir, "typo.yaml", "scandir: /s\nresyncPeriood: 1s\n", 0o600)
	several := writeConfig(t, dir, "several.yaml", "scandr: /s\nservicesMax: lots\n", 0o600)

	tests := []struct {
		name    string
		path    string
		want    Config
		wantErr string
	}{
		{name: "regular file", path: good, want: Config{Scandir: "/srv/scan"}},
		{name: "symlink to a regular file is followed", path: link, want: Config{Scandir: "/srv/scan"}},
		{name: "missing", path: filepath.Join(dir, "nope.yaml"), wantErr: "config: " + dir + "/nope.yaml: no such file"},
		{name: "directory", path: dir, wantErr: "config: " + dir + ": not a regular file (a directory)"},
		{name: "FIFO does not block", path: fifo, wantErr: "config: " + fifo + ": not a regular file (a FIFO)"},
		{
			name:    "world-writable",
			path:    writeConfig(t, dir, "ww.yaml", "", 0o646),
			wantErr: "config: " + dir + "/ww.yaml: refusing a group- or world-writable file (mode 0646); run chmod go-w on it",
		},
		{
			name:    "group-writable",
			path:    writeConfig(t, dir, "gw.yaml", "", 0o664),
			wantErr: "config: " + dir + "/gw.yaml: refusing a group- or world-writable file (mode 0664); run chmod go-w on it",
		},
		{name: "too big", path: big, wantErr: "config: " + big + ": file is larger than 1024 KiB"},
		{
			name:    "decode error names the file",
			path:    typo,
			wantErr: "config: " + typo + `: line 2: unknown field "resyncPeriood" (did you mean "resyncPeriod"?)`,
		},
		{
			name: "every problem on its own line, each naming the file",
			path: several,
			wantErr: "config: " + several + `: line 1: unknown field "scandr" (did you mean "scandir"?)` + "\n" +
				"config: " + several + `: line 2: field "servicesMax": expected an integer, got a string`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfigFile(tt.path)
			expectConfig(t, "LoadConfigFile()", got, err, tt.want, tt.wantErr)
		})
	}
}

// TestConfigLoadFileOtherOwner needs root to chown; the ownership rule itself is covered for
// every user by TestConfigCheckFile.
func TestConfigLoadFileOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another uid")
	}
	p := writeConfig(t, t.TempDir(), "c.yaml", "", 0o644)
	if err := os.Chown(p, 12345, 0); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfigFile(p)
	expectConfig(t, "LoadConfigFile()", got, err, Config{},
		"config: "+p+": refusing a file owned by uid 12345 (only root or uid 0 may own it); chown it")
}

// fakeInfo is an fs.FileInfo with a chosen mode and owner.
type fakeInfo struct {
	mode fs.FileMode
	uid  uint32
}

func (f fakeInfo) Name() string       { return "c.yaml" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: f.uid} }

func TestConfigCheckFile(t *testing.T) {
	tests := []struct {
		name    string
		info    fakeInfo
		euid    int
		wantErr string
	}{
		{name: "root-owned, run as root", info: fakeInfo{mode: 0o644, uid: 0}, euid: 0},
		{name: "root-owned, run as a user", info: fakeInfo{mode: 0o600, uid: 0}, euid: 1000},
		{name: "own file, run as a user", info: fakeInfo{mode: 0o644, uid: 1000}, euid: 1000},
		{
			name: "other user's file, run as root", info: fakeInfo{mode: 0o644, uid: 10000}, euid: 0,
			wantErr: "refusing a file owned by uid 10000 (only root or uid 0 may own it); chown it",
		},
		{
			name: "other user's file, run as a user", info: fakeInfo{mode: 0o644, uid: 10000}, euid: 1000,
			wantErr: "refusing a file owned by uid 10000 (only root or uid 1000 may own it); chown it",
		},
		{
			name: "world-writable", info: fakeInfo{mode: 0o666, uid: 0}, euid: 0,
			wantErr: "refusing a group- or world-writable file (mode 0666); run chmod go-w on it",
		},
		{
			name: "socket", info: fakeInfo{mode: fs.ModeSocket | 0o644}, euid: 0,
			wantErr: "not a regular file (a socket)",
		},
		{
			name: "device", info: fakeInfo{mode: fs.ModeDevice | 0o644}, euid: 0,
			wantErr: "not a regular file (a device)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrText(t, "checkConfigFile()", checkConfigFile(tt.info, tt.euid), tt.wantErr)
		})
	}
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigApplyEnv(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		env  map[string]string
		want Config
	}{
		{name: "nothing set", in: Config{HermesHome: "/a", Scandir: "/b"}, want: Config{HermesHome: "/a", Scandir: "/b"}},
		{
			name: "both set",
			in:   Config{HermesHome: "/a", Scandir: "/b"},
			env:  map[string]string{"HERMES_HOME": "/env/home", "S6_PROFILE_GATEWAY_SCANDIR": "/env/scan"},
			want: Config{HermesHome: "/env/home", Scandir: "/env/scan"},
		},
		{
			name: "empty values are ignored",
			in:   Config{HermesHome: "/a", Scandir: "/b"},
			env:  map[string]string{"HERMES_HOME": "", "S6_PROFILE_GATEWAY_SCANDIR": ""},
			want: Config{HermesHome: "/a", Scandir: "/b"},
		},
		{
			name: "other variables are ignored",
			in:   Config{},
			env:  map[string]string{"S6_BIN_DIR": "/x", "HERMES_SCANDIR": "/y"},
			want: Config{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			got.ApplyEnv(envFunc(tt.env))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ApplyEnv() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// statWith returns a StatFunc under which only the given paths exist, as regular files.
func statWith(paths ...string) StatFunc {
	return func(name string) (fs.FileInfo, error) {
		for _, p := range paths {
			if p == name {
				return fakeInfo{mode: 0o755}, nil
			}
		}
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
}

func TestConfigDefault(t *testing.T) {
	defaults := func(s6 string) Config {
		return Config{
			HermesHome: "/opt/data", Scandir: "/run/service", S6BinDir: s6, RuntimeDir: "/run/profile-controller",
			ResyncPeriod: dur(10 * time.Second), SettlePeriod: dur(15 * time.Second), MinUptime: dur(10 * time.Second),
			UnregisterTimeout: dur(10 * time.Second), HeartbeatTimeout: dur(2 * time.Minute), CommandTimeout: dur(5 * time.Second), ServicesMax: 1000,
			Role: "auto", Lease: "on",
			Topology: "perProfile", Multiplex: Multiplex{Fallback: "none"},
		}
	}
	set := Config{
		HermesHome: "/h", Scandir: "/s", S6BinDir: "/opt/s6/bin", RuntimeDir: "/r",
		ResyncPeriod: dur(time.Second), SettlePeriod: dur(2 * time.Second), MinUptime: dur(3 * time.Second),
		UnregisterTimeout: dur(4 * time.Second), HeartbeatTimeout: dur(6 * time.Second), CommandTimeout: dur(5 * time.Millisecond), ServicesMax: 7,
		GatewayUser: "hermes", LogFormat: "json", Verbosity: 3, Role: "standby", Lease: "off",
		Topology: "multiplex", Multiplex: Multiplex{Fallback: "ownSlot"},
	}
	tests := []struct {
		name string
		in   Config
		stat StatFunc
		want Config
	}{
		{name: "s6-overlay image", stat: statWith("/command/s6-svc"), want: defaults("/command")},
		{name: "Debian host", stat: statWith("/usr/bin/s6-svc"), want: defaults("/usr/bin")},
		{name: "set fields are kept", in: set, stat: statWith("/command/s6-svc"), want: set},
		{
			name: "a directory named /command/s6-svc does not count",
			stat: func(string) (fs.FileInfo, error) { return fakeInfo{mode: fs.ModeDir | 0o755}, nil },
			want: defaults("/usr/bin"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			got.Default(tt.stat)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Default() mismatch (-want +got):\n%s", diff)
			}
			again := got
			again.Default(tt.stat)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("Default() is not idempotent (-first +second):\n%s", diff)
			}
		})
	}
}

// TestConfigPrecedence checks file < environment < defaults-for-the-rest; flags are overlaid by
// main after ApplyEnv and before Default.
func TestConfigPrecedence(t *testing.T) {
	p := writeConfig(t, t.TempDir(), "c.yaml", "hermesHome: /file/home\nscandir: /file/scan\nresyncPeriod: 3s\n", 0o600)
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{
			name: "file only",
			want: Config{HermesHome: "/file/home", Scandir: "/file/scan", ResyncPeriod: dur(3 * time.Second)},
		},
		{
			name: "env beats file",
			env:  map[string]string{"HERMES_HOME": "/env/home"},
			want: Config{HermesHome: "/env/home", Scandir: "/file/scan", ResyncPeriod: dur(3 * time.Second)},
		},
		{
			name: "env scandir beats file",
			env:  map[string]string{"S6_PROFILE_GATEWAY_SCANDIR": "/env/scan"},
			want: Config{HermesHome: "/file/home", Scandir: "/env/scan", ResyncPeriod: dur(3 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfigFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got.ApplyEnv(envFunc(tt.env))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			got.Default(statWith())
			if got.ResyncPeriod.Duration != 3*time.Second || got.SettlePeriod.Duration != DefaultSettlePeriod {
				t.Errorf("Default() overrode a set field or missed an unset one: %+v", got)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{}
		c.Default(statWith())
		return c
	}
	with := func(f func(*Config)) Config {
		c := valid()
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "defaults", cfg: valid()},
		{name: "every optional field", cfg: with(func(c *Config) {
			c.GatewayUser, c.LogFormat, c.Verbosity = "hermes", "console", 4
			c.Topology, c.Multiplex.Fallback = "multiplex", "ownSlot"
			c.ExtraEnv = map[string]string{"TZ": "UTC", "_X1": "it's fine"}
			c.Templates = Templates{Run: "#!/bin/sh\nexec x {{shquote .Name}}\n", Finish: "#!/bin/sh\n", LogRun: "{{/* c */}}"}
		})},
		{name: "relative path", cfg: with(func(c *Config) { c.Scandir = "run/service" }),
			wantErr: `scandir "run/service" is not an absolute path`},
		{name: "empty path", cfg: with(func(c *Config) { c.HermesHome = "" }),
			wantErr: `hermesHome is empty`},
		{name: "NUL in a path", cfg: with(func(c *Config) { c.RuntimeDir = "/run/\x00x" }),
			wantErr: `runtimeDir contains a NUL byte`},
		{name: "zero duration", cfg: with(func(c *Config) { c.CommandTimeout = Duration{} }),
			wantErr: `commandTimeout must be positive, got 0s`},
		{name: "negative duration", cfg: with(func(c *Config) { c.SettlePeriod = dur(-time.Second) }),
			wantErr: `settlePeriod must be positive, got -1s`},
		{name: "negative servicesMax", cfg: with(func(c *Config) { c.ServicesMax = -1 }),
			wantErr: `servicesMax must not be negative, got -1`},
		{name: "negative verbosity", cfg: with(func(c *Config) { c.Verbosity = -2 }),
			wantErr: `verbosity must not be negative, got -2`},
		{name: "log format", cfg: with(func(c *Config) { c.LogFormat = "text" }),
			wantErr: `logFormat "text" is not one of json, console`},
		{name: "topology", cfg: with(func(c *Config) { c.Topology = "multiplexed" }),
			wantErr: `topology "multiplexed" is not one of perProfile, multiplex`},
		{name: "multiplex fallback", cfg: with(func(c *Config) { c.Topology, c.Multiplex.Fallback = "multiplex", "own" }),
			wantErr: `multiplex.fallback "own" is not one of none, ownSlot`},
		{name: "gateway user with shell syntax", cfg: with(func(c *Config) { c.GatewayUser = "x; rm -rf /" }),
			wantErr: `gatewayUser "x; rm -rf /" is not a valid account name`},
		{name: "extraEnv key", cfg: with(func(c *Config) { c.ExtraEnv = map[string]string{"A-B": "1", "1X": "2"} }),
			wantErr: "extraEnv key \"1X\" is not a valid shell variable name\nextraEnv key \"A-B\" is not a valid shell variable name"},
		{name: "extraEnv NUL", cfg: with(func(c *Config) { c.ExtraEnv = map[string]string{"A": "x\x00"} }),
			wantErr: `extraEnv A contains a NUL byte`},
		{name: "template syntax", cfg: with(func(c *Config) { c.Templates.Run = "{{if .Name}}" }),
			wantErr: `templates.run: template: run:1: unexpected EOF`},
		{name: "unknown template function", cfg: with(func(c *Config) { c.Templates.LogRun = "{{quote .Name}}" }),
			wantErr: `templates.logRun: template: logRun:1: function "quote" not defined`},
		{name: "one line per problem", cfg: with(func(c *Config) { c.Scandir = "x"; c.LogFormat = "y" }),
			wantErr: "scandir \"x\" is not an absolute path\nlogFormat \"y\" is not one of json, console"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrText(t, "Validate()", tt.cfg.Validate(testFuncs), tt.wantErr)
		})
	}
}

func TestConfigDurationSet(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "10s", want: 10 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "0", want: 0},
		{in: "-1s", wantErr: true},
		{in: "10", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		var d Duration
		err := d.Set(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && d.Duration != tt.want) {
			t.Errorf("Set(%q) = %v, %v; want %v, error %v", tt.in, d.Duration, err, tt.want, tt.wantErr)
		}
	}
}

// sampleData mirrors the fields the renderer gives templates (pkg/reconciler.TemplateData).
type sampleData struct {
	Name, Slot             string
	Port                   int
	Env                    []struct{ Key, Value string }
	ProfileDir, HermesHome string
	User, Command          string
}

// TestConfigSamples decodes every config/samples/*.yaml strictly, validates it after
// defaulting, and renders its templates for a named and the default profile through `sh -n`.
func TestConfigSamples(t *testing.T) {
	paths, err := filepath.Glob("../../config/samples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"debian-host.yaml": true, "hermes-image.yaml": true}
	for _, p := range paths {
		delete(want, filepath.Base(p))
	}
	if len(want) > 0 {
		t.Fatalf("missing samples: %v (found %v)", want, paths)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			checkScriptBytes(t, p, src)
			cfg, err := decodeConfig(src)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			cfg.Default(statWith())
			if err := cfg.Validate(testFuncs); err != nil {
				t.Fatalf("validate: %v", err)
			}
			for _, name := range []string{"default", "coder"} {
				data := sampleData{
					Name: name, Slot: "gateway-" + name, Port: 9570,
					Env:        []struct{ Key, Value string }{{"TZ", "Europe/Paris"}, {"Q", "it's"}},
					ProfileDir: "/opt/data/profiles/" + name, HermesHome: "/opt/data", User: cfg.GatewayUser,
				}
				for tname, src := range map[string]string{"run": cfg.Templates.Run, "finish": cfg.Templates.Finish, "logRun": cfg.Templates.LogRun} {
					if src == "" {
						continue
					}
					tpl := template.Must(template.New(tname).Funcs(testFuncs).Option("missingkey=error").Parse(src))
					var b bytes.Buffer
					if err := tpl.Execute(&b, data); err != nil {
						t.Fatalf("render %s: %v", tname, err)
					}
					if !strings.HasPrefix(b.String(), "#!/bin/sh\n") {
						t.Errorf("%s for %s does not start with #!/bin/sh:\n%s", tname, name, b.String())
					}
					shSyntax(t, tname, b.Bytes())
				}
			}
		})
	}
}

func TestConfigSampleDebianRun(t *testing.T) {
	src, err := os.ReadFile("../../config/samples/debian-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	tpl := template.Must(template.New("run").Funcs(testFuncs).Parse(cfg.Templates.Run))
	for _, tt := range []struct{ name, wantExec string }{
		{"default", "exec hermes gateway run --replace\n"},
		{"coder", "exec hermes -p 'coder' gateway run --replace\n"},
	} {
		var b bytes.Buffer
		if err := tpl.Execute(&b, sampleData{Name: tt.name, ProfileDir: "/d", HermesHome: "/h",
			Env: []struct{ Key, Value string }{{"A", "1"}}}); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(b.String(), tt.wantExec) || !strings.Contains(b.String(), "export A='1'\n") {
			t.Errorf("run for %s:\n%s", tt.name, b.String())
		}
	}
}

func shSyntax(t *testing.T, name string, script []byte) {
	t.Helper()
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sh -n %s: %v\n%s\n--- script:\n%s", name, err, out, script)
	}
}

// checkScriptBytes refuses CRLF line ends and a UTF-8 BOM, which break shebangs and s6 files.
func checkScriptBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		t.Errorf("%s starts with a UTF-8 BOM", path)
	}
	if bytes.Contains(b, []byte("\r")) {
		t.Errorf("%s contains a carriage return (CRLF line ends?)", path)
	}
}

// TestConfigRepoScripts checks the s6-overlay samples and the repo's scripts: no CRLF or BOM,
// a shebang, executable on disk and, once tracked, mode 100755 in the git index; sh/bash -n pass.
func TestConfigRepoScripts(t *testing.T) {
	root := "../.."
	scripts := []struct{ path, shell string }{
		{"config/samples/s6-overlay/cont-init.d/02-profile-controller", "sh"},
		{"config/samples/s6-overlay/s6-rc.d/profile-controller/run", "sh"},
		{".ci/run", "bash"},
	}
	hack, err := filepath.Glob(filepath.Join(root, "hack", "*.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hack {
		rel, _ := filepath.Rel(root, h)
		scripts = append(scripts, struct{ path, shell string }{rel, "bash"})
	}
	index := gitIndexModes(t, root)
	for _, s := range scripts {
		t.Run(s.path, func(t *testing.T) {
			p := filepath.Join(root, s.path)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			checkScriptBytes(t, s.path, b)
			if !bytes.HasPrefix(b, []byte("#!")) {
				t.Errorf("%s has no shebang", s.path)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s has mode %04o, want 0755", s.path, fi.Mode().Perm())
			}
			if mode, tracked := index[s.path]; tracked && mode != "100755" {
				t.Errorf("%s has mode %s in the git index, want 100755 (git update-index --chmod=+x)", s.path, mode)
			}
			if out, err := exec.Command(s.shell, "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", s.shell, s.path, err, out)
			}
		})
	}

	for _, f := range []struct{ path, content string }{
		{"config/samples/s6-overlay/s6-rc.d/profile-controller/type", "longrun\n"},
		{"config/samples/s6-overlay/s6-rc.d/profile-controller/dependencies.d/base", ""},
		{"config/samples/s6-overlay/user-bundles.d/user/contents.d/profile-controller", ""},
	} {
		b, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if string(b) != f.content {
			t.Errorf("%s = %q, want %q", f.path, b, f.content)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "config/samples/s6-overlay/s6-rc.d/profile-controller/timeout-down"))
	if err != nil {
		t.Fatal(err)
	}
	checkScriptBytes(t, "timeout-down", b)
	var ms int
	if err := yaml.Unmarshal(b, &ms); err != nil || ms <= 0 {
		t.Errorf("timeout-down = %q, want a positive number of milliseconds", b)
	}
}

// gitIndexModes maps tracked paths to their mode in the git index; empty outside a work tree
// or without git (the on-disk mode is still checked).
func gitIndexModes(t *testing.T, root string) map[string]string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "--stage", "--", "config/samples", "hack", ".ci").Output()
	if err != nil {
		t.Logf("git ls-files: %v (checking on-disk modes only)", err)
		return nil
	}
	modes := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		meta, path, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if f := strings.Fields(meta); len(f) > 0 {
			modes[path] = f[0]
		}
	}
	return modes
}
