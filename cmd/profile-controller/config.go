package main

// Configuration: the --config YAML file, then the environment, then flags (flags win). This file
// decodes the file strictly, overlays the environment, fills defaults and validates the result;
// main overlays the flags between ApplyEnv and Default.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Config is the controller's configuration: --config YAML, then environment, then flags.
type Config struct {
	// HermesHome is the persistent volume (default /opt/data; env HERMES_HOME).
	HermesHome string `json:"hermesHome,omitempty"`
	// Scandir is s6-svscan's scan directory (default /run/service; env S6_PROFILE_GATEWAY_SCANDIR).
	Scandir string `json:"scandir,omitempty"`
	// S6BinDir holds the s6 binaries (default /command, falling back to /usr/bin when /command/s6-svc is absent).
	S6BinDir string `json:"s6BinDir,omitempty"`
	// RuntimeDir is a tmpfs dir for the boot marker and the controller lock (default /run/profile-controller).
	RuntimeDir string `json:"runtimeDir,omitempty"`
	// ResyncPeriod is the periodic full resync (default 10s).
	ResyncPeriod Duration `json:"resyncPeriod,omitempty"`
	// SettlePeriod is how long an external s6 change is left alone before it is corrected (default 15s).
	SettlePeriod Duration `json:"settlePeriod,omitempty"`
	// MinUptime: a gateway the controller started that goes down sooner counts as a crash (default 10s).
	MinUptime Duration `json:"minUptime,omitempty"`
	// UnregisterTimeout bounds the wait for a slot to go down before removal (default 10s).
	UnregisterTimeout Duration `json:"unregisterTimeout,omitempty"`
	// CommandTimeout bounds each s6 command (default 5s).
	CommandTimeout Duration `json:"commandTimeout,omitempty"`
	// ServicesMax is s6-svscan's service limit, loggers included (default 1000; 0 keeps the default).
	ServicesMax int `json:"servicesMax,omitempty"`
	// GatewayUser runs the gateway; its group may drive the slots through the supervise skeleton
	// (empty: no privilege drop, no skeleton).
	GatewayUser string `json:"gatewayUser,omitempty"`
	// ExtraEnv is exported in every run script, as shell-quoted export lines sorted by key.
	ExtraEnv map[string]string `json:"extraEnv,omitempty"`
	// Templates override the rendered service files (Go text/template).
	Templates Templates `json:"templates,omitempty"`
	// MetricsAddr, when set (e.g. "127.0.0.1:9464"), serves /metrics, /healthz and /readyz
	// during `run` (default: off).
	MetricsAddr string `json:"metricsAddr,omitempty"`
	// LogFormat is "json" or "console" (default json for run, console otherwise).
	LogFormat string `json:"logFormat,omitempty"`
	// Verbosity is the logr V level enabled (default 0).
	Verbosity int `json:"verbosity,omitempty"`
}

// Templates are Go text/templates for the service files; empty means the built-in default.
type Templates struct {
	Run    string `json:"run,omitempty"`
	Finish string `json:"finish,omitempty"`
	LogRun string `json:"logRun,omitempty"`
}

// Duration is a time.Duration that decodes from "10s"-style strings. Zero means "use the
// default"; negative values are refused when decoding.
type Duration struct{ time.Duration }

// Defaults, also quoted by the README's configuration reference.
const (
	DefaultHermesHome        = "/opt/data"
	DefaultScandir           = "/run/service"
	DefaultS6BinDir          = "/command"
	FallbackS6BinDir         = "/usr/bin"
	DefaultRuntimeDir        = "/run/profile-controller"
	DefaultResyncPeriod      = 10 * time.Second
	DefaultSettlePeriod      = 15 * time.Second
	DefaultMinUptime         = 10 * time.Second
	DefaultUnregisterTimeout = 10 * time.Second
	DefaultCommandTimeout    = 5 * time.Second
	DefaultServicesMax       = 1000
)

// Environment variables read by ApplyEnv.
const (
	EnvHermesHome = "HERMES_HOME"
	EnvScandir    = "S6_PROFILE_GATEWAY_SCANDIR"
)

// MaxConfigFileSize caps the size of a config file.
const MaxConfigFileSize = 1 << 20

// LoadConfigFile reads and strictly decodes the YAML config file at path. It does not apply the
// environment, defaults or validation.
//
// Security rule: the file is operator-trusted configuration (its templates become root-run
// shell scripts), so it is refused unless it is a regular file (symlinks to one are followed: the
// path itself is chosen by the operator), owned by root or by the current user, and neither
// group- nor world-writable. It is opened non-blocking so that a FIFO is refused, not waited on.
//
// Decoding is strict: an unknown field (also one that differs from a known field only in
// case), a duplicate key, a second YAML document, a malformed duration or a value of the wrong
// type is an error. Every error is one line of the form "config <path>: <what> at line <n>".
func LoadConfigFile(path string) (Config, error) {
	data, err := readConfigFile(path, os.Geteuid())
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// readConfigFile opens path, checks it with checkConfigFile and reads at most MaxConfigFileSize bytes.
func readConfigFile(path string, euid int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("no such file")
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // the caller names the path
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat() // fstat: checks the file that was opened, not whatever the path names now
	if err != nil {
		return nil, err
	}
	if err := checkConfigFile(fi, euid); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigFileSize {
		return nil, fmt.Errorf("file is larger than %d KiB", MaxConfigFileSize>>10)
	}
	return data, nil
}

// checkConfigFile enforces the security rule documented on LoadConfigFile.
func checkConfigFile(fi fs.FileInfo, euid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fileKind(fi.Mode()))
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("refusing a group- or world-writable file (mode %04o); run chmod go-w on it", perm)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("cannot read the file's owner")
	}
	if st.Uid != 0 && int64(st.Uid) != int64(euid) {
		return fmt.Errorf("refusing a file owned by uid %d (only root or uid %d may own it); chown it", st.Uid, euid)
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "mode " + m.String()
	}
}

// decodeConfig decodes YAML strictly into a Config. Errors carry no file name and are one line.
func decodeConfig(src []byte) (Config, error) {
	var cfg Config
	if !utf8.Valid(src) {
		return cfg, errors.New("invalid YAML: not UTF-8")
	}
	if line := secondDocumentLine(src); line > 0 {
		return cfg, fmt.Errorf("a second YAML document starts at line %d; put everything in one", line)
	}
	// Pass 1: YAML syntax and duplicate keys (yaml.v2 strict mode), then a check of every key
	// against the struct's exact json names. encoding/json matches names case-insensitively and
	// its unknown-field error has neither the path nor a line, so both are done here.
	j, err := yaml.YAMLToJSONStrict(src)
	if err != nil {
		return cfg, yamlError(err)
	}
	if problems := checkFields(reflect.TypeFor[Config](), json.RawMessage(j), nil); len(problems) > 0 {
		return cfg, problemsError(src, problems)
	}
	// Pass 2: the decode proper; what is left to catch here is a wrong type for a non-string field.
	if err := yaml.UnmarshalStrict(src, &cfg); err != nil {
		return Config{}, decodeError(src, err)
	}
	return cfg, nil
}

// fieldProblem is one problem with one key, located by its path of json names.
type fieldProblem struct {
	path    []string
	what    string // e.g. `unknown field "templates.rnu"` or `field "resyncPeriod"`
	detail  string // "" or what is wrong with the value
	suggest string // "" or the did-you-mean candidate, as a full dotted path
}

// checkFields walks the JSON form of a config against the json names of typ's fields.
func checkFields(typ reflect.Type, raw json.RawMessage, prefix []string) []fieldProblem {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		what := "the top level"
		if len(prefix) > 0 {
			what = fmt.Sprintf("field %q", strings.Join(prefix, "."))
		}
		return []fieldProblem{{path: prefix, what: what, detail: "expected a mapping of fields"}}
	}
	fields := jsonFields(typ)
	names := sortedKeys(fields)
	keys := sortedKeys(obj)

	var problems []fieldProblem
	for _, k := range keys {
		path := append(append([]string(nil), prefix...), k)
		f, ok := fields[k]
		if !ok {
			p := fieldProblem{path: path, what: fmt.Sprintf("unknown field %q", strings.Join(path, "."))}
			if s := suggest(k, names); s != "" {
				p.suggest = strings.Join(append(append([]string(nil), prefix...), s), ".")
			}
			problems = append(problems, p)
			continue
		}
		switch {
		case f.Type.Kind() == reflect.String:
			if d := scalarNotString(obj[k]); d != "" {
				problems = append(problems, fieldProblem{path: path,
					what: fmt.Sprintf("field %q", strings.Join(path, ".")), detail: d})
			}
		case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.String:
			var m map[string]json.RawMessage
			if json.Unmarshal(obj[k], &m) != nil {
				continue // not a mapping: the decode proper reports it with the expected type
			}
			for _, mk := range sortedKeys(m) {
				if d := scalarNotString(m[mk]); d != "" {
					problems = append(problems, fieldProblem{path: append(path[:len(path):len(path)], mk),
						what: fmt.Sprintf("field %q", strings.Join(path, ".")+"."+mk), detail: d})
				}
			}
		case f.Type == reflect.TypeFor[Duration]():
			var d Duration
			if err := json.Unmarshal(obj[k], &d); err != nil {
				problems = append(problems, fieldProblem{path: path,
					what: fmt.Sprintf("field %q", strings.Join(path, ".")), detail: err.Error()})
			}
		case f.Type.Kind() == reflect.Struct:
			problems = append(problems, checkFields(f.Type, obj[k], path)...)
		}
	}
	return problems
}

// scalarNotString explains why a YAML number or boolean is refused for a string field ("" for a
// string, null or a non-scalar, which the decode proper handles). sigs.k8s.io/yaml would convert
// it, but YAML 1.1 conversion is lossy (0755 -> "493", yes -> "true", 1.0 -> "1").
func scalarNotString(raw json.RawMessage) string {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" || t[0] == '"' || t[0] == '{' || t[0] == '[' {
		return ""
	}
	kind := "a number"
	if t == "true" || t == "false" {
		kind = "a boolean"
	}
	return fmt.Sprintf("expected a string, got %s; quote the value so YAML does not convert it", kind)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonFields maps each exported field's json name to the field.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// suggest returns the known name closest to key when it is within edit distance 2 (ignoring
// case, which alone always qualifies), else "". Ties go to the alphabetically first name.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	lk := strings.ToLower(key)
	for _, n := range names {
		if d := editDistance(lk, strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// problemsError renders field problems as one line, in source order.
func problemsError(src []byte, problems []fieldProblem) error {
	type located struct {
		line int
		text string
	}
	out := make([]located, 0, len(problems))
	for _, p := range problems {
		line := 0
		if len(p.path) > 0 {
			line = keyLine(src, p.path)
		}
		text := p.what
		if line > 0 {
			text += fmt.Sprintf(" at line %d", line)
		}
		if p.detail != "" {
			text += ": " + p.detail
		}
		if p.suggest != "" {
			text += fmt.Sprintf(" (did you mean %q?)", p.suggest)
		}
		out = append(out, located{line, text})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].line < out[j].line })
	texts := make([]string, len(out))
	for i, o := range out {
		texts[i] = o.text
	}
	return errors.New(strings.Join(texts, "; "))
}

var (
	yamlLineRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlDupRE   = regexp.MustCompile(`^key (".*") already set in map$`)
	yamlErrPfx  = regexp.MustCompile(`^yaml: (unmarshal errors:)?`)
	typeFieldRE = regexp.MustCompile(`^json: cannot unmarshal (\S+) into Go struct field \S+ of type (\S+)$`)
)

// yamlError turns a (possibly multi-line) yaml.v2 error into one line.
func yamlError(err error) error {
	msg := yamlErrPfx.ReplaceAllString(err.Error(), "")
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if m := yamlLineRE.FindStringSubmatch(l); m != nil {
			if d := yamlDupRE.FindStringSubmatch(m[2]); d != nil {
				parts = append(parts, fmt.Sprintf("duplicate field %s at line %s", d[1], m[1]))
				continue
			}
			parts = append(parts, fmt.Sprintf("invalid YAML at line %s: %s", m[1], m[2]))
			continue
		}
		parts = append(parts, "invalid YAML: "+l)
	}
	if len(parts) == 0 {
		return errors.New("invalid YAML")
	}
	return errors.New(strings.Join(parts, "; "))
}

// decodeError turns an error from the strict decode into one line naming the field.
func decodeError(src []byte, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		path := strings.Split(te.Field, ".")
		at := ""
		if line := keyLine(src, path); line > 0 {
			at = fmt.Sprintf(" at line %d", line)
		}
		want := goKind(te.Type)
		return fmt.Errorf("field %q%s: expected %s, got %s", te.Field, at, want, yamlKind(te.Value))
	}
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	if m := typeFieldRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("expected %s, got %s", m[2], yamlKind(m[1]))
	}
	if msg == "" {
		msg = "cannot decode"
	}
	return errors.New(strings.ReplaceAll(msg, "\n", "; "))
}

// goKind names the expected type the way a YAML author thinks of it.
func goKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return t.String()
}

// yamlKind names a JSON value kind the way a YAML author thinks of it.
func yamlKind(v string) string {
	switch v {
	case "object":
		return "a mapping"
	case "array":
		return "a list"
	case "number", "bool", "string":
		return "a " + v
	}
	if strings.HasPrefix(v, "number") {
		return "a number"
	}
	return v
}

// keyLine returns the 1-based line of the block-style key at path in src, or 0 when it cannot
// be found (flow style, for example). It scans the text: at each level it only looks at lines
// indented exactly like the first key below the parent, and stops when the parent's block ends,
// so lines inside block scalars (templates) never match.
func keyLine(src []byte, path []string) int {
	lines := strings.Split(strings.TrimPrefix(string(src), "\ufeff"), "\n")
	start, parentIndent, found := 0, -1, -1
	for depth, key := range path {
		childIndent := -1
		found = -1
		for i := start; i < len(lines); i++ {
			content := strings.TrimLeft(strings.TrimRight(lines[i], "\r"), " ")
			indent := len(strings.TrimRight(lines[i], "\r")) - len(content)
			if content == "" || content[0] == '#' {
				continue
			}
			if depth == 0 && indent == 0 && (content == "---" || strings.HasPrefix(content, "--- ") || content[0] == '%') {
				continue
			}
			if indent <= parentIndent {
				break // the parent's block ended
			}
			if childIndent < 0 {
				childIndent = indent
			}
			if indent == childIndent && lineKey(content) == key {
				found = i
				break
			}
		}
		if found < 0 {
			return 0
		}
		start, parentIndent = found+1, childIndent
	}
	return found + 1
}

// lineKey returns the mapping key a YAML line starts with ("" when it does not look like one).
func lineKey(content string) string {
	switch content[0] {
	case '"':
		end := 1
		for end < len(content) && content[end] != '"' {
			if content[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(content) {
			return ""
		}
		k, err := strconv.Unquote(content[:end+1])
		if err != nil || !strings.HasPrefix(strings.TrimLeft(content[end+1:], " "), ":") {
			return ""
		}
		return k
	case '\'':
		var b strings.Builder
		for i := 1; i < len(content); i++ {
			if content[i] == '\'' {
				if i+1 < len(content) && content[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				if !strings.HasPrefix(strings.TrimLeft(content[i+1:], " "), ":") {
					return ""
				}
				return b.String()
			}
			b.WriteByte(content[i])
		}
		return ""
	}
	for i := 0; i < len(content); i++ {
		if content[i] == ':' && (i+1 == len(content) || content[i+1] == ' ' || content[i+1] == '\t') {
			return strings.TrimRight(content[:i], " \t")
		}
	}
	return ""
}

// secondDocumentLine returns the line of a "---" marker that follows content, or 0. yaml.v2
// silently ignores every document after the first, which would drop settings without a word.
func secondDocumentLine(src []byte) int {
	seenContent := false
	for i, l := range strings.Split(string(src), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "---" || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "---\t") {
			if seenContent {
				return i + 1
			}
			if rest := strings.TrimSpace(strings.TrimPrefix(l, "---")); rest != "" && rest[0] != '#' {
				seenContent = true
			}
			continue
		}
		if l == "..." || strings.HasPrefix(l, "... ") {
			continue
		}
		if t := strings.TrimSpace(l); t != "" && t[0] != '#' && t[0] != '%' {
			seenContent = true
		}
	}
	return 0
}

// UnmarshalJSON decodes a Go duration string such as "10s" or "1m30s"; null leaves d as is.
// Negative durations and bare numbers are errors.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a duration such as \"10s\" or \"1m30s\", got %s", b)
	}
	return d.Set(s)
}

// MarshalJSON encodes d as a duration string ("10s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

// Set parses a duration string such as "10s"; it makes *Duration a flag.Value. Negative
// durations are refused.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a form such as \"10s\" or \"1m30s\")", s)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	d.Duration = v
	return nil
}

// ApplyEnv overlays the environment on c: HERMES_HOME sets HermesHome and
// S6_PROFILE_GATEWAY_SCANDIR sets Scandir, each only when set to a non-empty value.
// getenv is usually os.Getenv.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvHermesHome); v != "" {
		c.HermesHome = v
	}
	if v := getenv(EnvScandir); v != "" {
		c.Scandir = v
	}
}

// StatFunc is os.Stat's signature; Default takes one so tests need not touch /command.
type StatFunc func(name string) (fs.FileInfo, error)

// Default fills every unset (zero) field with its default. S6BinDir defaults to /command when
// /command/s6-svc exists (s6-overlay) and to /usr/bin otherwise (Debian's s6 package); stat is
// used for that check, nil meaning os.Stat. LogFormat and Verbosity are left alone: their
// defaults depend on the command and belong to main. Default is idempotent.
func (c *Config) Default(stat StatFunc) {
	if stat == nil {
		stat = os.Stat
	}
	setString := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setString(&c.HermesHome, DefaultHermesHome)
	setString(&c.Scandir, DefaultScandir)
	setString(&c.RuntimeDir, DefaultRuntimeDir)
	if c.S6BinDir == "" {
		c.S6BinDir = FallbackS6BinDir
		if fi, err := stat(filepath.Join(DefaultS6BinDir, "s6-svc")); err == nil && !fi.IsDir() {
			c.S6BinDir = DefaultS6BinDir
		}
	}
	for _, d := range []struct {
		p *Duration
		v time.Duration
	}{
		{&c.ResyncPeriod, DefaultResyncPeriod},
		{&c.SettlePeriod, DefaultSettlePeriod},
		{&c.MinUptime, DefaultMinUptime},
		{&c.UnregisterTimeout, DefaultUnregisterTimeout},
		{&c.CommandTimeout, DefaultCommandTimeout},
	} {
		if d.p.Duration == 0 {
			d.p.Duration = d.v
		}
	}
	if c.ServicesMax == 0 {
		c.ServicesMax = DefaultServicesMax
	}
}

var (
	envKeyRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	gatewayUserRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
)

// Validate checks a defaulted config and returns one error (one line, every problem joined by
// "; ", no "config:" prefix: the caller adds it) or nil: paths absolute, durations positive, servicesMax and verbosity not negative,
// logFormat "", "json" or "console", gatewayUser a plain account name, extraEnv keys shell
// variable names and values free of NUL bytes, and each template parsing as a Go text/template
// with funcs (which must hold every function the renderer provides, e.g. shquote).
func (c Config) Validate(funcs template.FuncMap) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, p := range []struct{ name, v string }{
		{"hermesHome", c.HermesHome}, {"scandir", c.Scandir}, {"s6BinDir", c.S6BinDir}, {"runtimeDir", c.RuntimeDir},
	} {
		switch {
		case p.v == "":
			add("%s is empty", p.name)
		case !filepath.IsAbs(p.v):
			add("%s %q is not an absolute path", p.name, p.v)
		case strings.ContainsRune(p.v, 0):
			add("%s contains a NUL byte", p.name)
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{
		{"resyncPeriod", c.ResyncPeriod}, {"settlePeriod", c.SettlePeriod}, {"minUptime", c.MinUptime},
		{"unregisterTimeout", c.UnregisterTimeout}, {"commandTimeout", c.CommandTimeout},
	} {
		if d.v.Duration <= 0 {
			add("%s must be positive, got %s", d.name, d.v.Duration)
		}
	}
	if c.ServicesMax < 0 {
		add("servicesMax must not be negative, got %d", c.ServicesMax)
	}
	if c.Verbosity < 0 {
		add("verbosity must not be negative, got %d", c.Verbosity)
	}
	switch c.LogFormat {
	case "", "json", "console":
	default:
		add("logFormat %q is not one of json, console", c.LogFormat)
	}
	if c.GatewayUser != "" && !gatewayUserRE.MatchString(c.GatewayUser) {
		add("gatewayUser %q is not a valid account name", c.GatewayUser)
	}
	for _, k := range sortedKeys(c.ExtraEnv) {
		if !envKeyRE.MatchString(k) {
			add("extraEnv key %q is not a valid shell variable name", k)
		} else if strings.ContainsRune(c.ExtraEnv[k], 0) {
			add("extraEnv %s contains a NUL byte", k)
		}
	}
	for _, t := range []struct{ name, src string }{
		{"run", c.Templates.Run}, {"finish", c.Templates.Finish}, {"logRun", c.Templates.LogRun},
	} {
		if t.src == "" {
			continue
		}
		if _, err := template.New(t.name).Funcs(funcs).Parse(t.src); err != nil {
			add("templates.%s: %s", t.name, strings.ReplaceAll(err.Error(), "\n", " "))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
