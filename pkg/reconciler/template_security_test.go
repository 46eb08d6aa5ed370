package reconciler_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/reconciler"
)

// Helpers of the security tests carry a "sec" prefix so they never collide with the helpers of
// the other test files of the package.

func secProfile(name string) desired.Profile {
	return desired.Profile{Name: name, Dir: "/opt/data/profiles/" + name, Port: desired.Port(name)}
}

// TestTemplateSecurityNoCodeExecution: a template can only call shquote and text/template's
// builtins, none of which does I/O or runs anything: any other function is a parse error, at
// config time, before anything is rendered.
func TestTemplateSecurityNoCodeExecution(t *testing.T) {
	for _, src := range []string{
		`{{exec "id"}}`, `{{system "id"}}`, `{{run "id"}}`, `{{readFile "/etc/shadow"}}`, `{{env "HOME"}}`,
		`{{getenv "HOME"}}`, `{{os.Getenv "HOME"}}`, `{{include "/etc/passwd"}}`, `{{file "/etc/passwd"}}`,
		`{{template "x"}}`, `{{.Name | sh}}`,
	} {
		for _, field := range []string{"run", "finish", "logRun"} {
			tpl := reconciler.Templates{}
			switch field {
			case "run":
				tpl.Run = src
			case "finish":
				tpl.Finish = src
			case "logRun":
				tpl.LogRun = src
			}
			r, err := reconciler.NewRenderer(tpl, nil, "/opt/data", "hermes")
			if err == nil {
				// Only an undefined template may parse; it must then fail to execute.
				if _, rerr := r.Render(secProfile("coder")); rerr == nil {
					t.Errorf("templates.%s %q parsed and rendered", field, src)
				}
			}
		}
	}
	// The whole function map the templates get: two pure quoting functions.
	if len(reconciler.FuncMap) != 2 || reconciler.FuncMap["shquote"] == nil || reconciler.FuncMap["shword"] == nil {
		t.Errorf("FuncMap = %v, want only shquote and shword", reconciler.FuncMap)
	}
	for _, s := range []string{"", "/opt/data", "a b", "$(id)", "`id`", "x;y", "it's", "a\nb", "*"} {
		out, err := exec.Command("sh", "-c", "printf %s "+reconciler.ShellWord(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh reads ShellWord(%q) = %q as %q (%v)", s, reconciler.ShellWord(s), out, err)
		}
	}
}

// TestTemplateSecurityDataHasNoMethods: the template data is plain values. A template can call
// methods of its data, so the data types must have none (nor func-valued fields for call).
func TestTemplateSecurityDataHasNoMethods(t *testing.T) {
	var check func(typ reflect.Type, path string)
	seen := map[reflect.Type]bool{}
	check = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if n := typ.NumMethod(); n > 0 {
			t.Errorf("%s (%v) has %d methods a template could call", path, typ, n)
		}
		if typ.Kind() != reflect.Pointer && reflect.PointerTo(typ).NumMethod() > 0 {
			t.Errorf("*%s has methods a template could call", path)
		}
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				check(f.Type, path+"."+f.Name)
			}
		case reflect.Slice, reflect.Array, reflect.Pointer, reflect.Map:
			check(typ.Elem(), path+"[]")
		case reflect.String, reflect.Int, reflect.Bool:
		default:
			t.Errorf("%s is a %v: template data should be strings, numbers and lists of them", path, typ.Kind())
		}
	}
	check(reflect.TypeOf(reconciler.TemplateData{}), "TemplateData")

	// call on a data field fails at render time.
	r, err := reconciler.NewRenderer(reconciler.Templates{Run: `{{call .Name}}`}, nil, "/opt/data", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(secProfile("coder")); err == nil {
		t.Error(`{{call .Name}} rendered`)
	}
}

// TestTemplateSecurityOutputIsOnlyContent: whatever a template prints, it only becomes the bytes
// of its own file: the file names and modes of a slot are fixed by the controller.
func TestTemplateSecurityOutputIsOnlyContent(t *testing.T) {
	hostile := "../../../etc/passwd\x00\n#!/bin/sh\nrm -rf /\n{{ not a template }}"
	r, err := reconciler.NewRenderer(reconciler.Templates{
		Run:    "{{.Slot}}/../../etc/shadow " + "{{printf \"%q\" .Name}}\n" + strings.ReplaceAll(hostile, "{{", `{{"{{"}}`),
		Finish: "../finish",
		LogRun: "/etc/cron.d/x",
	}, nil, "/opt/data", "")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Render(secProfile("coder"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name+" "+f.Mode.String())
	}
	if want := []string{"type -rw-r--r--", "run -rwxr-xr-x", "finish -rwxr-xr-x", "log/run -rwxr-xr-x"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files = %q, want %q", got, want)
	}
}

// TestTemplateSecurityRecursionIsBounded: a template that calls itself fails (text/template's
// depth limit) instead of hanging or crashing the controller.
func TestTemplateSecurityRecursionIsBounded(t *testing.T) {
	r, err := reconciler.NewRenderer(reconciler.Templates{Run: `{{define "x"}}{{template "x" .}}{{end}}{{template "x" .}}`}, nil, "/opt/data", "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Render(secProfile("coder")); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a self-recursive template rendered")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a self-recursive template did not stop within 30 s")
	}
}

// secEnvBlock cuts the extra-env exports out of a run script rendered from the default template.
func secEnvBlock(run string) (string, bool) {
	_, after, ok := strings.Cut(run, "\ncd /opt/data\n")
	block, _, ok2 := strings.Cut(after, "export HERMES_S6_SUPERVISED_CHILD=1\n")
	return block, ok && ok2
}

// secShell runs script with /bin/sh in an empty directory with an empty PATH (so that an
// injected command could not run anything), bounded by 10 s, and returns stdout.
func secShell(t *testing.T, dir, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/nonexistent"}
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	return out.String(), err
}

// FuzzRenderRunScript: for every profile name that passes validation and every extra-env value
// (NUL excepted: the config refuses it, and no environment can hold one), the default run
// script exports exactly that value, runs nothing else, passes sh -n, and passes the name to
// hermes as one quoted word.
func FuzzRenderRunScript(f *testing.F) {
	for _, s := range [][2]string{
		{"coder", "plain"}, {"a", ""}, {"my-profile_2", "a'b"}, {"x", `"$HOME" \ \\n ${PATH}`},
		{"x", "$(touch pwned)"}, {"x", "`touch pwned`"}, {"x", "line1\nline2\n\nexport EVIL=1"},
		{"x", ";rm -rf /"}, {"x", "'\"'\"'"}, {"x", "héllo ☃ \xff\xfe"}, {"x", "\\"}, {"x", "'"},
		{"x", "$'\\x41'"}, {"x", "*"}, {"x", "~root"}, {"x", "a\rb\tc\x1b[31m"}, {"0", "!"},
	} {
		f.Add(s[0], s[1])
	}
	_, err := exec.LookPath("/bin/sh")
	if err != nil {
		f.Skip("no /bin/sh")
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		if desired.ValidateName(name) != nil || strings.ContainsRune(value, 0) {
			t.Skip()
		}
		r, err := reconciler.NewRenderer(reconciler.Templates{}, map[string]string{"HOSTILE": value}, "/opt/data", "hermes")
		if err != nil {
			t.Fatal(err)
		}
		files, err := r.Render(secProfile(name))
		if err != nil {
			t.Fatal(err)
		}
		run := string(files[1].Data)
		if files[1].Name != "run" {
			t.Fatalf("second file is %s", files[1].Name)
		}
		if want := "hermes -p '" + name + "' gateway run --replace"; !strings.Contains(run, want) {
			t.Fatalf("run script does not pass the name as one quoted word %q:\n%s", want, run)
		}
		block, ok := secEnvBlock(run)
		if !ok {
			t.Fatalf("no env block in:\n%s", run)
		}
		dir := t.TempDir()
		out, err := secShell(t, dir, block+"printf '%s' \"$HOSTILE\"\n")
		if err != nil {
			t.Fatalf("sh failed (%v) on the env block:\n%s", err, block)
		}
		if out != value {
			t.Fatalf("HOSTILE = %q, want %q; block:\n%s", out, value, block)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("the env block created %v", ents)
		}
		if _, err := secShell(t, dir, "set -n\n"+run); err != nil {
			t.Fatalf("sh -n rejects the run script (%v):\n%s", err, run)
		}
		for _, f := range files[2:] {
			if _, err := secShell(t, dir, "set -n\n"+string(f.Data)); err != nil {
				t.Fatalf("sh -n rejects %s (%v):\n%s", f.Name, err, f.Data)
			}
		}
	})
}
