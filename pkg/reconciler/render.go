package reconciler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// DefaultRunTemplate is the hermes image's run script (docs/behaviour.md, rendered files). HOME and
// the working directory are the configured hermesHome (/opt/data in the image).
const DefaultRunTemplate = `#!/command/with-contenv sh
set -e
export HOME={{shword .HermesHome}}
cd {{shword .HermesHome}}
{{range .Env}}export {{.Key}}={{shquote .Value}}
{{end}}export HERMES_S6_SUPERVISED_CHILD=1
export HERMES_SUPERVISED_CHILD=1
{{if .User}}[ "$(id -u)" = 0 ] || exec {{.Command}}
exec s6-setuidgid {{shquote .User}} {{.Command}}
{{else}}exec {{.Command}}
{{end}}`

// DefaultFinishTemplate stops s6 from restarting a gateway that exited 0 (clean) or 78 (fatal config).
const DefaultFinishTemplate = `#!/bin/sh
# $1 is the run script's exit code: 0 (clean exit) and 78 (fatal config error) must not restart.
if [ "$1" = 0 ] || [ "$1" = 78 ]; then exit 125; fi
exit 0
`

// DefaultLogRunTemplate logs a gateway to $HERMES_HOME/logs/gateways/<name> (HERMES_HOME resolved at
// run time, defaulting to the configured hermesHome).
const DefaultLogRunTemplate = `#!/command/with-contenv sh
: "${HERMES_HOME:={{shword .HermesHome}}}"
log_dir="$HERMES_HOME/logs/gateways/{{.Name}}"
{{if .User}}if [ "$(id -u)" = 0 ]; then
  s6-setuidgid {{shquote .User}} mkdir -p "$log_dir"
  s6-setuidgid {{shquote .User}} rm -f "$log_dir/lock"
  exec s6-setuidgid {{shquote .User}} s6-log 1 n10 s1000000 T "$log_dir"
fi
{{end}}mkdir -p "$log_dir"
rm -f "$log_dir/lock"
exec s6-log 1 n10 s1000000 T "$log_dir"
`

// EnvVar is one extra environment variable exported by the run script.
type EnvVar struct{ Key, Value string }

// TemplateData is what the service-file templates see.
type TemplateData struct {
	// Name is the profile name; Slot is "gateway-<name>".
	Name, Slot string
	// Port is the deterministic port of the profile.
	Port int
	// Env is the extra environment, sorted by key.
	Env []EnvVar
	// ProfileDir is the profile directory; HermesHome the volume root.
	ProfileDir, HermesHome string
	// User is the gateway user ("" for no privilege drop).
	User string
	// Command is the gateway command line, shell-quoted: hermes [-p '<name>'] gateway run --replace.
	Command string
}

// Templates holds the source of the three rendered scripts; empty fields take the defaults.
type Templates struct {
	Run, Finish, LogRun string
}

// Renderer renders a profile's slot files. It is safe for concurrent use.
type Renderer struct {
	run, finish, logRun *template.Template
	env                 []EnvVar
	home, user          string
	gen                 string
}

// Generation identifies everything the rendered bytes depend on besides the profile (templates,
// extra env, hermesHome, user): two renderers with the same Generation render the same files.
// It keys the controller's memory of which slot files are known to match.
func (r *Renderer) Generation() string { return r.gen }

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvKey reports whether k can be exported by the run script: a shell variable name.
func ValidEnvKey(k string) bool { return envKeyRE.MatchString(k) }

// ShellQuote quotes s for a POSIX shell: the result is one word whose value is exactly s.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// ShellWord is s as one shell word: as it is when it holds only characters no shell treats
// specially (letters, digits, / . _ - + : @ , =), else ShellQuote(s). So the image's /opt/data
// renders exactly as it always did.
func ShellWord(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', strings.ContainsRune("/._-+:@,=", r):
		default:
			return ShellQuote(s)
		}
	}
	return s
}

// FuncMap is the function map every template gets.
var FuncMap = template.FuncMap{"shquote": ShellQuote, "shword": ShellWord}

// NewRenderer parses the templates (defaults where empty) and validates the extra env keys.
func NewRenderer(t Templates, env map[string]string, hermesHome, user string) (*Renderer, error) {
	r := &Renderer{home: hermesHome, user: user}
	// The generation hashes the sources in use, defaults included, so that a build with other
	// default templates never trusts files known to match the old ones.
	h := sha256.New()
	for _, x := range []struct {
		name, src, def string
		dst            **template.Template
	}{
		{"run", t.Run, DefaultRunTemplate, &r.run},
		{"finish", t.Finish, DefaultFinishTemplate, &r.finish},
		{"logRun", t.LogRun, DefaultLogRunTemplate, &r.logRun},
	} {
		src := x.src
		if src == "" {
			src = x.def
		}
		fmt.Fprintf(h, "%d:%s", len(src), src)
		tpl, err := template.New(x.name).Funcs(FuncMap).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("templates.%s: %w", x.name, err)
		}
		*x.dst = tpl
	}
	for k, v := range env {
		if !ValidEnvKey(k) {
			return nil, fmt.Errorf("extraEnv: %q is not a valid shell variable name", k)
		}
		r.env = append(r.env, EnvVar{k, v})
	}
	sort.Slice(r.env, func(i, j int) bool { return r.env[i].Key < r.env[j].Key })
	for _, part := range []string{hermesHome, user} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	for _, e := range r.env {
		fmt.Fprintf(h, "%d:%s%d:%s", len(e.Key), e.Key, len(e.Value), e.Value)
	}
	r.gen = hex.EncodeToString(h.Sum(nil)[:12])
	return r, nil
}

// Data returns the template data for a profile.
func (r *Renderer) Data(p desired.Profile) TemplateData {
	cmd := "hermes gateway run --replace"
	if p.Name != desired.DefaultProfile {
		cmd = "hermes -p " + ShellQuote(p.Name) + " gateway run --replace"
	}
	return TemplateData{
		Name: p.Name, Slot: p.Slot(), Port: p.Port, Env: r.env,
		ProfileDir: p.Dir, HermesHome: r.home, User: r.user, Command: cmd,
	}
}

// Render returns the slot files of p in the order of observed.ManagedFiles.
func (r *Renderer) Render(p desired.Profile) ([]s6.File, error) {
	d := r.Data(p)
	files := []s6.File{{Name: "type", Data: []byte("longrun\n"), Mode: 0o644}}
	for _, x := range []struct {
		name string
		t    *template.Template
	}{{"run", r.run}, {"finish", r.finish}, {"log/run", r.logRun}} {
		var b bytes.Buffer
		if err := x.t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("render %s for profile %s: %w", x.name, p.Name, err)
		}
		if b.Len() > observed.MaxManagedFileSize {
			// The observer caps its reads there: a bigger file would look drifted on every pass.
			return nil, fmt.Errorf("render %s for profile %s: %d bytes, limit %d", x.name, p.Name, b.Len(), observed.MaxManagedFileSize)
		}
		files = append(files, s6.File{Name: x.name, Data: b.Bytes(), Mode: 0o755})
	}
	return files, nil
}
