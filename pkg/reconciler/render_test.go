package reconciler

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// renderFiles renders profile name with the default templates and returns the files by name.
func renderFiles(t *testing.T, env map[string]string, user, name string) map[string]string {
	t.Helper()
	r, err := NewRenderer(Templates{}, env, "/opt/data", user)
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	files, err := r.Render(*newProfile(name, desired.Up, desired.Up, t0))
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[f.Name] = string(f.Data)
	}
	return out
}

func TestRenderFilesAndModes(t *testing.T) {
	r := planRenderer(t)
	files, err := r.Render(*newProfile("coder", desired.Up, desired.Up, t0))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		want := os.FileMode(0o755)
		if f.Name == "type" {
			want = 0o644
		}
		if f.Mode != want {
			t.Errorf("%s: mode %v, want %v", f.Name, f.Mode, want)
		}
	}
	if diff := cmp.Diff(observed.ManagedFiles, names); diff != "" {
		t.Errorf("file order (-ManagedFiles +rendered):\n%s", diff)
	}
	if got := string(files[0].Data); got != "longrun\n" {
		t.Errorf("type = %q, want %q", got, "longrun\n")
	}
	// Rendering twice gives the same bytes: drift detection compares them.
	again, _ := r.Render(*newProfile("coder", desired.Down, desired.Hold, t0))
	if diff := cmp.Diff(files, again); diff != "" {
		t.Errorf("second render differs (intent must not matter) (-first +second):\n%s", diff)
	}
}

func TestRenderRunScript(t *testing.T) {
	tests := []struct {
		name, profile, user string
		contains            []string
		excludes            []string
	}{
		{
			name: "named profile, no user", profile: "coder",
			contains: []string{
				"#!/command/with-contenv sh\n", "\nset -e\n",
				"\nexport HOME=/opt/data\n", "\ncd /opt/data\n",
				"\nexport HERMES_S6_SUPERVISED_CHILD=1\n", "\nexport HERMES_SUPERVISED_CHILD=1\n",
				"\nexec hermes -p 'coder' gateway run --replace\n",
			},
			excludes: []string{"s6-setuidgid", "id -u"},
		},
		{
			name: "named profile, user hermes", profile: "coder", user: "hermes",
			contains: []string{
				"\nexport HOME=/opt/data\n",
				"\nexport HERMES_S6_SUPERVISED_CHILD=1\n", "\nexport HERMES_SUPERVISED_CHILD=1\n",
				"\n[ \"$(id -u)\" = 0 ] || exec hermes -p 'coder' gateway run --replace\n",
				"\nexec s6-setuidgid 'hermes' hermes -p 'coder' gateway run --replace\n",
			},
		},
		{
			name: "default profile", profile: "default",
			contains: []string{"\nexec hermes gateway run --replace\n", "\nexport HOME=/opt/data\n"},
			excludes: []string{"-p"},
		},
		{
			name: "default profile, user hermes", profile: "default", user: "hermes",
			contains: []string{
				"\n[ \"$(id -u)\" = 0 ] || exec hermes gateway run --replace\n",
				"\nexec s6-setuidgid 'hermes' hermes gateway run --replace\n",
			},
			excludes: []string{" -p "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := renderFiles(t, nil, tt.user, tt.profile)["run"]
			for _, s := range tt.contains {
				if !strings.Contains(run, s) {
					t.Errorf("run does not contain %q:\n%s", s, run)
				}
			}
			for _, s := range tt.excludes {
				if strings.Contains(run, s) {
					t.Errorf("run contains %q:\n%s", s, run)
				}
			}
			// The sentinels come before the command.
			if i, j := strings.Index(run, "HERMES_SUPERVISED_CHILD=1"), strings.Index(run, "gateway run"); i < 0 || j < i {
				t.Errorf("the sentinel exports must precede the command:\n%s", run)
			}
		})
	}
}

// TestRenderFinishScript runs the rendered finish script with /bin/sh, as s6-supervise would
// (it passes the run script's exit code as $1).
func TestRenderFinishScript(t *testing.T) {
	finish := renderFiles(t, nil, "", "coder")["finish"]
	path := filepath.Join(t.TempDir(), "finish")
	if err := os.WriteFile(path, []byte(finish), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		runExit string
		want    int
	}{
		{"0", 125},  // clean exit: do not restart
		{"78", 125}, // fatal config error: do not restart
		{"1", 0},
		{"137", 0},
		{"256", 0}, // s6 passes 256 when the run script was killed by a signal
	}
	for _, tt := range tests {
		t.Run("exit "+tt.runExit, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", path, tt.runExit, "15")
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				code = ee.ExitCode()
			case err != nil:
				t.Fatalf("run finish: %v", err)
			}
			if code != tt.want {
				t.Errorf("finish %s exited %d, want %d (output %q)", tt.runExit, code, tt.want, out)
			}
		})
	}
}

func TestRenderLogRunScript(t *testing.T) {
	for _, user := range []string{"", "hermes"} {
		t.Run("user "+user, func(t *testing.T) {
			logRun := renderFiles(t, nil, user, "coder")["log/run"]
			for _, s := range []string{
				`: "${HERMES_HOME:=/opt/data}"`,
				`log_dir="$HERMES_HOME/logs/gateways/coder"`,
				`s6-log 1 n10 s1000000 T "$log_dir"`,
			} {
				if !strings.Contains(logRun, s) {
					t.Errorf("log/run does not contain %q:\n%s", s, logRun)
				}
			}
			if strings.Contains(logRun, "/opt/data/logs/gateways/coder") {
				t.Errorf("log/run bakes HERMES_HOME into the log dir:\n%s", logRun)
			}
			if user != "" && !strings.Contains(logRun, `exec s6-setuidgid 'hermes' s6-log 1 n10 s1000000 T "$log_dir"`) {
				t.Errorf("log/run does not run s6-log as the gateway user:\n%s", logRun)
			}
		})
	}
}

// TestRenderLogRunResolvesHomeAtRunTime runs the top of the rendered log/run with and without
// HERMES_HOME in the environment.
func TestRenderLogRunResolvesHomeAtRunTime(t *testing.T) {
	logRun := renderFiles(t, nil, "", "coder")["log/run"]
	_, rest, ok := strings.Cut(logRun, "\n") // drop the with-contenv shebang
	head, _, ok2 := strings.Cut(rest, "mkdir")
	if !ok || !ok2 {
		t.Fatalf("unexpected log/run:\n%s", logRun)
	}
	for _, tt := range []struct{ home, want string }{
		{"", "/opt/data/logs/gateways/coder"},
		{"/srv/hermes", "/srv/hermes/logs/gateways/coder"},
	} {
		cmd := exec.Command("/bin/sh", "-c", head+`printf %s "$log_dir"`)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		if tt.home != "" {
			cmd.Env = append(cmd.Env, "HERMES_HOME="+tt.home)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		if string(out) != tt.want {
			t.Errorf("HERMES_HOME=%q: log_dir = %q, want %q", tt.home, out, tt.want)
		}
	}
}

// envBlock returns the extra-env part of a rendered run script: the lines between `cd /opt/data`
// and the first sentinel export.
func envBlock(t *testing.T, run string) string {
	t.Helper()
	_, after, ok := strings.Cut(run, "\ncd /opt/data\n")
	block, _, ok2 := strings.Cut(after, "export HERMES_S6_SUPERVISED_CHILD=1\n")
	if !ok || !ok2 {
		t.Fatalf("no env block in run script:\n%s", run)
	}
	return block
}

// sandboxPath is a PATH holding only printenv and touch, so that an injected command in a
// broken quote can create a marker file (and be caught) but can never run anything else.
func sandboxPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"printenv", "touch"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not found: %v", name, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shellEnv runs script then `printenv key` with /bin/sh in the sandbox and returns the output:
// the value and a newline, or "" when key is not set.
func shellEnv(t *testing.T, path, script, key string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script+"\nprintenv "+key+" || :\n")
	cmd.Env = []string{"PATH=" + path}
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh: %v\nscript:\n%s", err, script)
	}
	return string(out)
}

func TestRenderExtraEnvIsQuoted(t *testing.T) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "pwned-"+hex.EncodeToString(rnd[:]))
	env := map[string]string{
		"Z_SPACE":     "bar baz",
		"A_QUOTE":     "a'b",
		"M_SUBST":     "$(touch " + marker + ")",
		"B_BACKTICK":  "`touch " + marker + "`",
		"N_NEWLINE":   "line1\nline2\n\nexport EVIL=1",
		"C_SEMICOLON": ";rm -rf /",
		"D_DQUOTE":    `"$HOME" \ \\n ${PATH}`,
		"E_EMPTY":     "",
		"F_QUOTES":    `''"'"'`,
		"G_UTF8":      "héllo wörld ☃",
		"_under":      "x",
	}
	run := renderFiles(t, env, "", "coder")["run"]
	block := envBlock(t, run)

	// Sorted by key, one export per variable.
	wantKeys := []string{"A_QUOTE", "B_BACKTICK", "C_SEMICOLON", "D_DQUOTE", "E_EMPTY", "F_QUOTES", "G_UTF8", "M_SUBST", "N_NEWLINE", "Z_SPACE", "_under"}
	last := -1
	for _, k := range wantKeys {
		i := strings.Index(block, "export "+k+"=")
		if i <= last || strings.Count(block, "export "+k+"=") != 1 {
			t.Errorf("export %s is missing, repeated or out of order:\n%s", k, block)
		}
		last = i
	}
	if !strings.Contains(block, `export A_QUOTE='a'"'"'b'`+"\n") {
		t.Errorf("A_QUOTE not quoted as expected:\n%s", block)
	}

	path := sandboxPath(t)
	for k, v := range env {
		t.Run(k, func(t *testing.T) {
			if got := shellEnv(t, path, block, k); got != v+"\n" {
				t.Errorf("printenv %s = %q, want %q", k, got, v+"\n")
			}
		})
	}
	if got := shellEnv(t, path, block, "EVIL"); got != "" {
		t.Errorf("a newline in a value exported EVIL=%q", got)
	}
	if _, err := os.Lstat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a value was executed: %s exists (err %v)", marker, err)
	}

	// The harness itself can see an injection: the same value unquoted does create the marker.
	shellEnv(t, path, "export X=$(touch "+marker+")", "X")
	if _, err := os.Lstat(marker); err != nil {
		t.Errorf("control: unquoted $(touch) did not create the marker, so the check above proves nothing: %v", err)
	}
}

func TestNewRendererRejectsInvalidEnvKeys(t *testing.T) {
	for _, key := range []string{"", "1ABC", "A-B", "A B", "A=B", "A.B", "É", "A\nB", "$A", "A;rm"} {
		t.Run(key, func(t *testing.T) {
			_, err := NewRenderer(Templates{}, map[string]string{"OK": "1", key: "v"}, "/opt/data", "")
			if err == nil {
				t.Fatalf("NewRenderer accepted env key %q", key)
			}
			if !strings.Contains(err.Error(), "extraEnv") || !strings.Contains(err.Error(), strconv.Quote(key)) {
				t.Errorf("error %q does not name extraEnv and the key", err)
			}
		})
	}
	for _, key := range []string{"A", "_", "_A1", "a_b", "HTTP_PROXY"} {
		if _, err := NewRenderer(Templates{}, map[string]string{key: "v"}, "/opt/data", ""); err != nil {
			t.Errorf("NewRenderer refused valid key %q: %v", key, err)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "'abc'"},
		{"a b", "'a b'"},
		{"a'b", `'a'"'"'b'`},
		{"'", `''"'"''`},
		{"''", `''"'"''"'"''`},
		{"$HOME", "'$HOME'"},
		{"`id`", "'`id`'"},
		{"$(id)", "'$(id)'"},
		{`a\b`, `'a\b'`},
		{"a\nb", "'a\nb'"},
		{"*", "'*'"},
		{"-n", "'-n'"},
		{`"`, `'"'`},
	}
	path := sandboxPath(t)
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ShellQuote(tt.in)
			if got != tt.want {
				t.Errorf("ShellQuote(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// And the shell reads it back as exactly one word with the original value.
			if out := shellEnv(t, path, "export V="+got, "V"); out != tt.in+"\n" {
				t.Errorf("sh reads %s as %q, want %q", got, out, tt.in+"\n")
			}
		})
	}
}

func TestNewRendererTemplateErrors(t *testing.T) {
	tests := []struct {
		name string
		tpl  Templates
		want string
	}{
		{"run", Templates{Run: "#!/bin/sh\nexec {{.Command"}, "templates.run"},
		{"finish", Templates{Finish: "{{if}}"}, "templates.finish"},
		{"logRun", Templates{LogRun: "{{end}}"}, "templates.logRun"},
		{"unknown function", Templates{Run: "{{nosuchfunc .Name}}"}, "templates.run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRenderer(tt.tpl, nil, "/opt/data", "")
			if err == nil {
				t.Fatal("NewRenderer accepted a broken template")
			}
			if !strings.HasPrefix(err.Error(), tt.want+":") {
				t.Errorf("error %q does not start with %q", err, tt.want+":")
			}
		})
	}
}

// TestRenderTemplateExecError: a template that parses but fails on execution (unknown field)
// is an error naming the file and the profile.
func TestRenderTemplateExecError(t *testing.T) {
	r, err := NewRenderer(Templates{LogRun: "#!/bin/sh\n{{.NoSuchField}}\n"}, nil, "/opt/data", "")
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	_, err = r.Render(*newProfile("coder", desired.Up, desired.Up, t0))
	if err == nil || !strings.Contains(err.Error(), "render log/run for profile coder") {
		t.Fatalf("Render error = %v, want one naming log/run and coder", err)
	}
}

func TestRenderCustomTemplatesSeeData(t *testing.T) {
	tpl := Templates{
		Run:    "name={{.Name}} slot={{.Slot}} port={{.Port}} home={{.HermesHome}} dir={{.ProfileDir}} user={{.User}} cmd={{.Command}}{{range .Env}} {{.Key}}={{shquote .Value}}{{end}}\n",
		Finish: "#!/bin/sh\nexit 0\n",
		LogRun: "#!/bin/sh\nexec cat\n",
	}
	r, err := NewRenderer(tpl, map[string]string{"B": "2", "A": "1 1"}, "/srv/h", "gw")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Render(*newProfile("coder", desired.Up, desired.Up, t0))
	if err != nil {
		t.Fatal(err)
	}
	want := "name=coder slot=gateway-coder port=9570 home=/srv/h dir=/opt/data/profiles/coder user=gw cmd=hermes -p 'coder' gateway run --replace A='1 1' B='2'\n"
	if got := string(files[1].Data); got != want {
		t.Errorf("run = %q, want %q", got, want)
	}
	if diff := cmp.Diff([]s6.File{{Name: "finish", Data: []byte(tpl.Finish), Mode: 0o755}}, files[2:3]); diff != "" {
		t.Errorf("finish (-want +got):\n%s", diff)
	}
}

// TestRenderHermesHome: the default templates use the configured hermesHome (HOME, the working
// directory, the log dir's default), quoted when it needs to be; the image's /opt/data renders
// as it always did.
func TestRenderHermesHome(t *testing.T) {
	for home, want := range map[string][]string{
		"/opt/data":        {"export HOME=/opt/data\n", "cd /opt/data\n", `: "${HERMES_HOME:=/opt/data}"`},
		"/srv/hermes data": {"export HOME='/srv/hermes data'\n", "cd '/srv/hermes data'\n", `: "${HERMES_HOME:='/srv/hermes data'}"`},
	} {
		r, err := NewRenderer(Templates{}, nil, home, "")
		if err != nil {
			t.Fatal(err)
		}
		files, err := r.Render(desired.Profile{Name: "coder", Dir: home + "/profiles/coder", Port: desired.Port("coder")})
		if err != nil {
			t.Fatal(err)
		}
		all := ""
		for _, f := range files {
			all += string(f.Data)
		}
		for _, w := range want {
			if !strings.Contains(all, w) {
				t.Errorf("hermesHome %q: rendered files lack %q:\n%s", home, w, all)
			}
		}
	}
}
