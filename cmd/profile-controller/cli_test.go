package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/pkg/desired"
)

// cliEnv is a HERMES_HOME with a profiles/ dir, an empty scandir and a runtime dir, for running
// the CLI in-process. No s6 runs: the commands tested here only read.
type cliEnv struct {
	root, home, scandir, runtimeDir string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	root := t.TempDir()
	e := &cliEnv{root: root, home: filepath.Join(root, "home"), scandir: filepath.Join(root, "service"), runtimeDir: filepath.Join(root, "run")}
	for _, d := range []string{filepath.Join(e.home, "profiles"), e.scandir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *cliEnv) globals() []string {
	return []string{"--hermes-home", e.home, "--scandir", e.scandir, "--runtime-dir", e.runtimeDir, "--s6-bin-dir", "/usr/bin"}
}

// run runs the CLI with args followed by the global flags (they work after the command too).
func (e *cliEnv) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(context.Background(), append(append([]string{}, args...), e.globals()...), &out, &errOut)
	t.Logf("$ profile-controller %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

func (e *cliEnv) profile(t *testing.T, name, state string) {
	t.Helper()
	dir := filepath.Join(e.home, "profiles", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "SOUL.md"), "# "+name+"\n", 0o644)
	if state != "" {
		writeFile(t, filepath.Join(dir, "gateway_state.json"), state, 0o644)
	}
}

// slot writes gateway-<name> with the files the controller renders (in sync), no supervisor.
func (e *cliEnv) slot(t *testing.T, name string) string {
	t.Helper()
	cfg := Config{HermesHome: e.home, Scandir: e.scandir, RuntimeDir: e.runtimeDir, S6BinDir: "/usr/bin"}
	r, err := newRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, present, err := desired.Loader{Home: e.home}.LoadProfile(name)
	if err != nil || !present {
		t.Fatalf("LoadProfile(%s) = %v, %v", name, present, err)
	}
	files, err := r.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.scandir, "gateway-"+name)
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f.Name)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f.Name), string(f.Data), f.Mode.Perm())
	}
	return dir
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestCLIExitCodes: 0 ok, 1 failure (diff: differences), 2 usage or configuration error (diff:
// trouble), 3 status found an unhealthy profile (table forms only).
func TestCLIExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *cliEnv)
		args       []string
		want       int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "no command", args: nil, want: exitUsage, wantStderr: "profile-controller: no command given"},
		{name: "unknown command", args: []string{"stauts"}, want: exitUsage, wantStderr: `unknown command "stauts" (did you mean "status"?)`},
		{name: "unknown flag", args: []string{"status", "--bogus"}, want: exitUsage, wantStderr: "Run 'profile-controller status --help' for usage."},
		{name: "flag of another command", args: []string{"status", "--once"}, want: exitUsage, wantStderr: "unknown flag: --once"},
		{name: "bad global flag value", args: []string{"status", "--resync-period", "soon"}, want: exitUsage, wantStderr: "invalid argument"},
		{name: "reconcile without --once", args: []string{"reconcile"}, want: exitUsage, wantStderr: "reconcile needs --once"},
		{name: "extra argument", args: []string{"plan", "coder"}, want: exitUsage, wantStderr: "plan: unknown command"},
		{name: "describe needs a profile", args: []string{"describe"}, want: exitUsage, wantStderr: "describe: accepts 1 arg(s), received 0"},
		{name: "unknown output format", args: []string{"status", "-o", "xml"}, want: exitUsage, wantStderr: `unknown output format "xml" (table, wide, json, yaml)`},
		{name: "invalid configuration", args: []string{"status", "--log-format", "text"}, want: exitUsage, wantStderr: `profile-controller: config: logFormat "text" is not one of json, console`},
		{
			name: "unknown config field, with the file and line",
			setup: func(t *testing.T, e *cliEnv) {
				writeFile(t, filepath.Join(e.root, "c.yaml"), "resyncPeriood: 1s\nservicesMax: many\n", 0o600)
			},
			args: []string{"status", "--config", "CONFIG"}, want: exitUsage,
			wantStderr: `profile-controller: config: CONFIG: line 1: unknown field "resyncPeriood" (did you mean "resyncPeriod"?)` + "\n" +
				`profile-controller: config: CONFIG: line 2: field "servicesMax": expected an integer, got a string` + "\n",
		},
		{name: "readiness on stderr", args: []string{"run", "--notify-fd", "2"}, want: exitUsage, wantStderr: "--notify-fd 2: use a descriptor of its own"},
		{name: "readiness on a closed descriptor", args: []string{"run", "--notify-fd", "987"}, want: exitUsage, wantStderr: "--notify-fd 987: the descriptor is not open"},
		{name: "help", args: []string{"help"}, want: exitOK, wantStdout: "Available Commands:"},
		{name: "command help", args: []string{"status", "--help"}, want: exitOK, wantStdout: "profile-controller status [PROFILE...] [flags]"},
		{name: "help for a command", args: []string{"help", "diff"}, want: exitOK, wantStdout: "like diff(1)"},
		{name: "version", args: []string{"version"}, want: exitOK, wantStdout: "profile-controller "},
		{name: "--version", args: []string{"--version"}, want: exitOK, wantStdout: "platform: "},
		{name: "version as JSON", args: []string{"version", "-o", "json"}, want: exitOK, wantStdout: `"apiVersion": "profile-controller/v1"`},
		{name: "completion", args: []string{"completion", "bash"}, want: exitOK, wantStdout: "__profile-controller_"},
		{name: "status, all healthy", args: []string{"status"}, want: exitOK, wantStdout: "default  hold"},
		{
			name:  "status, a slot without a supervisor",
			setup: func(t *testing.T, e *cliEnv) { e.slot(t, "default") },
			args:  []string{"status"}, want: exitUnhealthy, wantStdout: "Unsupervised",
		},
		{
			name:  "status -o wide, unhealthy",
			setup: func(t *testing.T, e *cliEnv) { e.slot(t, "default") },
			args:  []string{"status", "-o", "wide"}, want: exitUnhealthy, wantStdout: "Unsupervised",
		},
		{
			name:  "status -o json, unhealthy: the verdict is in the document and the exit status",
			setup: func(t *testing.T, e *cliEnv) { e.slot(t, "default") },
			args:  []string{"status", "-o", "json"}, want: exitUnhealthy, wantStdout: `"healthy": false`,
		},
		{
			name:  "status, a skipped profile dir",
			setup: func(t *testing.T, e *cliEnv) { e.profile(t, "Bad_Name", "") },
			args:  []string{"status"}, want: exitUnhealthy, wantStdout: "skipped Bad_Name",
		},
		{
			name:  "status of one healthy profile next to an unhealthy one",
			setup: func(t *testing.T, e *cliEnv) { e.profile(t, "coder", ""); e.slot(t, "default") },
			args:  []string{"status", "coder"}, want: exitOK, wantStdout: "coder",
		},
		{name: "status of a profile that does not exist", args: []string{"status", "nope"}, want: exitFailure, wantStderr: "status: no profile or slot named nope"},
		{
			name:  "status when the scandir cannot be read",
			setup: func(t *testing.T, e *cliEnv) { must(t, os.RemoveAll(e.scandir)) },
			args:  []string{"status"}, want: exitFailure, wantStderr: "read scandir",
		},
		{name: "describe", args: []string{"describe", "default"}, want: exitOK, wantStdout: "Conditions:"},
		{name: "describe a profile that does not exist", args: []string{"describe", "nope"}, want: exitFailure, wantStderr: "no profile or slot named nope"},
		{name: "render", args: []string{"render", "default"}, want: exitOK, wantStdout: "==> gateway-default/run (mode 0755) <=="},
		{name: "render one file", args: []string{"render", "default", "--file", "type"}, want: exitOK, wantStdout: "longrun\n"},
		{name: "render an unknown file", args: []string{"render", "default", "--file", "bogus"}, want: exitUsage, wantStderr: `no file "bogus"`},
		{name: "render a profile that does not exist", args: []string{"render", "nope"}, want: exitFailure, wantStderr: "no profile named nope"},
		{name: "diff, no slot yet", args: []string{"diff", "default"}, want: exitFailure, wantStdout: "+++ rendered/gateway-default/run"},
		{
			name:  "diff, in sync",
			setup: func(t *testing.T, e *cliEnv) { e.slot(t, "default") },
			args:  []string{"diff", "default"}, want: exitOK,
		},
		{
			name: "diff, drifted",
			setup: func(t *testing.T, e *cliEnv) {
				writeFile(t, filepath.Join(e.slot(t, "default"), "finish"), "#!/bin/sh\nexit 1\n", 0o755)
			},
			args: []string{"diff", "default"}, want: exitFailure, wantStdout: "-exit 1\n",
		},
		{name: "diff of a profile that does not exist is trouble", args: []string{"diff", "nope"}, want: exitUsage, wantStderr: "no profile named nope"},
		{
			name: "diff of a foreign slot entry is trouble",
			setup: func(t *testing.T, e *cliEnv) {
				must(t, os.Symlink("/tmp", filepath.Join(e.scandir, "gateway-default")))
			},
			args: []string{"diff", "default"}, want: exitUsage, wantStderr: "foreign entry in scandir",
		},
		{name: "plan", args: []string{"plan"}, want: exitOK, wantStdout: "plan: create gateway-default (down)\n"},
		{name: "plan --boot", args: []string{"plan", "--boot"}, want: exitOK, wantStdout: "plan: create gateway-default (down)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCLIEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			cfgPath := filepath.Join(e.root, "c.yaml")
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "CONFIG", cfgPath)
			}
			stdout, stderr, code := e.run(t, args...)
			if code != tt.want {
				t.Errorf("exit status %d, want %d", code, tt.want)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout)
			}
			if want := strings.ReplaceAll(tt.wantStderr, "CONFIG", cfgPath); !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
			if tt.wantStderr == "" && stderr != "" {
				t.Errorf("unexpected stderr:\n%s", stderr)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCLIDryRunIsPlan: reconcile --once --dry-run prints exactly what plan prints, with or
// without --boot, and changes nothing.
func TestCLIDryRunIsPlan(t *testing.T) {
	e := newCLIEnv(t)
	e.profile(t, "coder", `{"desired_state":"running"}`)
	e.slot(t, "coder")
	writeFile(t, filepath.Join(e.scandir, "gateway-coder", "run"), "#!/bin/sh\n", 0o755)
	must(t, os.Mkdir(filepath.Join(e.scandir, ".gateway-x.tmp"), 0o755))
	for _, boot := range [][]string{nil, {"--boot"}} {
		plan, planErr, code := e.run(t, append([]string{"plan"}, boot...)...)
		if code != 0 {
			t.Fatalf("plan: exit %d", code)
		}
		dry, dryErr, code := e.run(t, append([]string{"reconcile", "--once", "--dry-run"}, boot...)...)
		if code != 0 {
			t.Fatalf("reconcile --once --dry-run: exit %d", code)
		}
		if plan != dry || planErr != dryErr {
			t.Errorf("plan %v and reconcile --once --dry-run %v differ:\n%s%s---\n%s%s", boot, boot, plan, planErr, dry, dryErr)
		}
		for _, want := range []string{"plan: update gateway-coder run\n", "plan: create gateway-default (down)\n", "plan: clean-staging .gateway-x.tmp\n"} {
			if !strings.Contains(plan, want) {
				t.Errorf("plan %v lacks %q", boot, want)
			}
		}
		if strings.Contains(plan, "action=") || strings.Contains(plan, "started") {
			t.Errorf("plan speaks of the past:\n%s", plan)
		}
	}
	if _, err := os.Stat(filepath.Join(e.scandir, "gateway-default")); err == nil {
		t.Error("a dry run created a slot")
	}
	if _, err := os.Stat(filepath.Join(e.runtimeDir, "boot-done")); err == nil {
		t.Error("a dry run wrote the boot marker")
	}
}

// TestCLIGlobalFlagsBeforeOrAfter: global flags work on either side of the command.
func TestCLIGlobalFlagsBeforeOrAfter(t *testing.T) {
	e := newCLIEnv(t)
	e.profile(t, "coder", "")
	var out, errOut bytes.Buffer
	before := append(append([]string{}, e.globals()...), "-v", "4", "status", "coder")
	if code := execute(context.Background(), before, &out, &errOut); code != 0 {
		t.Fatalf("flags before the command: exit %d: %s", code, errOut.String())
	}
	after, _, code := e.run(t, "status", "coder", "-v", "4")
	if code != 0 {
		t.Fatalf("flags after the command: exit %d", code)
	}
	if out.String() != after || !strings.Contains(after, "coder") {
		t.Errorf("outputs differ:\n%s---\n%s", out.String(), after)
	}
}

// TestCLIRunReportsTheLockBeforeThePort: a second run, whose metricsAddr is taken (by the first
// controller, in real life), names the lock holder instead of failing on the port.
func TestCLIRunReportsTheLockBeforeThePort(t *testing.T) {
	e := newCLIEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	cfg := filepath.Join(e.root, "c.yaml")
	writeFile(t, cfg, "metricsAddr: "+strconv.Quote(ln.Addr().String())+"\n", 0o600)
	must(t, os.MkdirAll(e.runtimeDir, 0o755))
	lock, err := os.OpenFile(filepath.Join(e.runtimeDir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	defer lock.Close()
	must(t, unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB))
	_, err = lock.WriteString("4242\n")
	must(t, err)

	_, stderr, code := e.run(t, "run", "--config", cfg)
	if code != exitFailure {
		t.Errorf("exit status %d, want %d", code, exitFailure)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "profile-controller: another profile-controller is running: ") || !strings.Contains(last, "pid 4242") {
		t.Errorf("last stderr line = %q, want the lock holder", last)
	}
	if strings.Contains(stderr, "address already in use") {
		t.Errorf("the port was tried before the lock:\n%s", stderr)
	}
}

// TestCLIHelpPerCommand: each command has its own help text.
func TestCLIHelpPerCommand(t *testing.T) {
	e := newCLIEnv(t)
	seen := map[string]string{}
	for _, cmd := range []string{"run", "reconcile", "plan", "status", "describe", "render", "diff", "version"} {
		out, _, code := e.run(t, cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		if !strings.Contains(out, "profile-controller "+cmd) || !strings.Contains(out, "Examples:") || !strings.Contains(out, "Global Flags:") {
			t.Errorf("%s --help lacks its usage line, examples or global flags:\n%s", cmd, out)
		}
		for other, text := range seen {
			if text == out {
				t.Errorf("%s --help is the same as %s --help", cmd, other)
			}
		}
		seen[cmd] = out
	}
}

// TestLoadConfigFlagsWin: file < environment < flags, and only the flags that were set count.
func TestLoadConfigFlagsWin(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, p, "hermesHome: /file/home\nscandir: /file/scan\nresyncPeriod: 3s\nsettlePeriod: 4s\n", 0o600)
	t.Setenv("HERMES_HOME", "/env/home")
	t.Setenv("S6_PROFILE_GATEWAY_SCANDIR", "/env/scan")
	g := globalFlags{config: p, scandir: "/flag/scan", resync: 7e9, settle: 9e9, home: "/ignored"}
	set := map[string]bool{"scandir": true, "resync-period": true}
	cfg, err := loadConfig(&g, func(name string) bool { return set[name] })
	must(t, err)
	if cfg.HermesHome != "/env/home" || cfg.Scandir != "/flag/scan" || cfg.ResyncPeriod.Seconds() != 7 || cfg.SettlePeriod.Seconds() != 4 {
		t.Errorf("loadConfig() = home %s scandir %s resync %s settle %s", cfg.HermesHome, cfg.Scandir, cfg.ResyncPeriod, cfg.SettlePeriod)
	}
}
