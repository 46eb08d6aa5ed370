package main

// Configuration: the --config YAML file, then the environment, then flags (flags win). This file
// reads the file safely, overlays the environment, fills defaults and validates the result;
// decode.go decodes the file strictly, and loadConfig (app.go) overlays the flags between
// ApplyEnv and Default.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/template"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

// Config is the controller's configuration: --config YAML, then environment, then flags.
type Config struct {
	// HermesHome is the persistent volume (default /opt/data; env HERMES_HOME).
	HermesHome string `yaml:"hermesHome,omitempty"`
	// Scandir is s6-svscan's scan directory (default /run/service; env S6_PROFILE_GATEWAY_SCANDIR).
	Scandir string `yaml:"scandir,omitempty"`
	// S6BinDir holds the s6 binaries (default /command, falling back to /usr/bin when /command/s6-svc is absent).
	S6BinDir string `yaml:"s6BinDir,omitempty"`
	// RuntimeDir is a tmpfs dir for the boot marker and the controller lock (default /run/profile-controller).
	RuntimeDir string `yaml:"runtimeDir,omitempty"`
	// ResyncPeriod is the periodic full resync (default 10s).
	ResyncPeriod Duration `yaml:"resyncPeriod,omitempty"`
	// SettlePeriod is how long an external s6 change is left alone before it is corrected (default 15s).
	SettlePeriod Duration `yaml:"settlePeriod,omitempty"`
	// MinUptime: a gateway the controller started that goes down sooner counts as a crash (default 10s).
	MinUptime Duration `yaml:"minUptime,omitempty"`
	// UnregisterTimeout bounds the wait for a slot to go down before removal (default 10s).
	UnregisterTimeout Duration `yaml:"unregisterTimeout,omitempty"`
	// HeartbeatTimeout: a gateway s6 says is up whose heartbeat file is older is reported Stale
	// in status (default 120s; report only; off for a gateway that never wrote one).
	HeartbeatTimeout Duration `yaml:"heartbeatTimeout,omitempty"`
	// CommandTimeout bounds each s6 command (default 5s).
	CommandTimeout Duration `yaml:"commandTimeout,omitempty"`
	// ServicesMax is s6-svscan's service limit, loggers included (default 1000; 0 keeps the default).
	ServicesMax int `yaml:"servicesMax,omitempty"`
	// GatewayUser runs the gateway; its group may drive the slots through the supervise skeleton
	// (empty: no privilege drop, no skeleton).
	GatewayUser string `yaml:"gatewayUser,omitempty"`
	// ExtraEnv is exported in every run script, as shell-quoted export lines sorted by key.
	ExtraEnv map[string]string `yaml:"extraEnv,omitempty"`
	// Topology is "perProfile" (default: every profile's slot follows its own intent) or
	// "multiplex" (the root gateway serves every profile not marked standalone in its config.yaml).
	Topology string `yaml:"topology,omitempty"`
	// Multiplex tunes the multiplex topology.
	Multiplex Multiplex `yaml:"multiplex,omitempty"`
	// Templates override the rendered service files (Go text/template).
	Templates Templates `yaml:"templates,omitempty"`
	// MetricsAddr, when set (e.g. "127.0.0.1:9464"), serves /metrics, /healthz and /readyz
	// during `run` (default: off).
	MetricsAddr string `yaml:"metricsAddr,omitempty"`
	// LogFormat is "json" or "console" (default json for run, console otherwise).
	LogFormat string `yaml:"logFormat,omitempty"`
	// Verbosity is the logr V level enabled (default 0).
	Verbosity int `yaml:"verbosity,omitempty"`
	// Role is "auto" (act while holding the HERMES_HOME lease; the default) or "standby" (never
	// act: a dashboard or API container sharing the volume; env PROFILE_CONTROLLER_ROLE).
	Role string `yaml:"role,omitempty"`
	// Lease is "on" (take the HERMES_HOME lease; the default) or "off" (a volume never shared:
	// no lease file is touched).
	Lease string `yaml:"lease,omitempty"`
}

// Multiplex configures the multiplex topology.
type Multiplex struct {
	// Fallback is "none" (default: a folded profile the root gateway does not serve is only
	// reported NotServed) or "ownSlot" (its own slot is started until the root lists it).
	Fallback string `yaml:"fallback,omitempty"`
}

// Templates are Go text/templates for the service files; empty means the built-in default.
type Templates struct {
	Run    string `yaml:"run,omitempty"`
	Finish string `yaml:"finish,omitempty"`
	LogRun string `yaml:"logRun,omitempty"`
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
	DefaultHeartbeatTimeout  = 120 * time.Second
	DefaultCommandTimeout    = 5 * time.Second
	DefaultServicesMax       = 1000
	DefaultTopology          = string(reconciler.PerProfile)
	DefaultFallback          = string(reconciler.FallbackNone)
)

// Environment variables read by ApplyEnv.
const (
	EnvHermesHome = "HERMES_HOME"
	EnvScandir    = "S6_PROFILE_GATEWAY_SCANDIR"
	EnvRole       = "PROFILE_CONTROLLER_ROLE"
)

// Roles and lease settings.
const (
	RoleAuto    = "auto"
	RoleStandby = "standby"
	LeaseOn     = "on"
	LeaseOff    = "off"
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
// Decoding is strict (see decodeConfig): an unknown field (also one that differs from a known
// field only in case), a duplicate key, a second YAML document, a malformed duration or a value
// of the wrong type is an error. Every problem of the file is reported at once, one line each,
// in line order: "config: <path>: line <n>: <what>".
func LoadConfigFile(path string) (Config, error) {
	cfg, _, err := loadConfigFileRaw(path)
	return cfg, err
}

// loadConfigFileRaw is LoadConfigFile that also returns the bytes it decoded (nil on a read error).
func loadConfigFileRaw(path string) (Config, []byte, error) {
	data, err := readConfigFile(path, os.Geteuid())
	if err != nil {
		return Config{}, nil, prefixLines("config: "+path+": ", err)
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		return Config{}, data, prefixLines("config: "+path+": ", err)
	}
	return cfg, data, nil
}

// prefixLines returns err with prefix put before every line of its message; errors.Is and
// errors.As still see err.
func prefixLines(prefix string, err error) error {
	return &prefixedError{prefix: prefix, err: err}
}

type prefixedError struct {
	prefix string
	err    error
}

func (e *prefixedError) Error() string {
	lines := strings.Split(e.err.Error(), "\n")
	for i, l := range lines {
		lines[i] = e.prefix + l
	}
	return strings.Join(lines, "\n")
}

func (e *prefixedError) Unwrap() error { return e.err }

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

// UnmarshalYAML decodes a Go duration string such as "10s" or "1m30s"; null leaves d as is.
// Negative durations, bare numbers and non-scalars are errors, returned as a *yaml.TypeError so
// that the decoder goes on and reports every other problem of the file in the same pass.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	fail := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return nil
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		if err := d.Set(n.Value); err != nil {
			return fail("%v", err)
		}
		return nil
	case n.Kind == yaml.ScalarNode:
		return fail("expected a duration such as \"10s\" or \"1m30s\", got %s", n.Value)
	}
	return fail("expected a duration such as \"10s\" or \"1m30s\", got %s", nodeKind(n))
}

// MarshalYAML encodes d as a duration string ("10s").
func (d Duration) MarshalYAML() (any, error) { return d.Duration.String(), nil }

// Set parses a duration string such as "10s". Negative durations are refused.
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

// ApplyEnv overlays the environment on c: HERMES_HOME sets HermesHome,
// S6_PROFILE_GATEWAY_SCANDIR sets Scandir and PROFILE_CONTROLLER_ROLE sets Role, each only when
// set to a non-empty value.
// getenv is usually os.Getenv.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvHermesHome); v != "" {
		c.HermesHome = v
	}
	if v := getenv(EnvScandir); v != "" {
		c.Scandir = v
	}
	if v := getenv(EnvRole); v != "" {
		c.Role = v
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
	setString(&c.Role, RoleAuto)
	setString(&c.Lease, LeaseOn)
	setString(&c.Topology, DefaultTopology)
	setString(&c.Multiplex.Fallback, DefaultFallback)
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
		{&c.HeartbeatTimeout, DefaultHeartbeatTimeout},
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
	gatewayUserRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
)

// Validate checks a defaulted config and returns nil or one error with one line per problem (no
// "config:" prefix: the caller adds it): role auto or standby, lease on or off, paths absolute, durations positive, servicesMax and verbosity not negative,
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
		{"unregisterTimeout", c.UnregisterTimeout}, {"heartbeatTimeout", c.HeartbeatTimeout}, {"commandTimeout", c.CommandTimeout},
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
	switch c.Role {
	case "", RoleAuto, RoleStandby:
	default:
		add("role %q is not one of auto, standby (set by the file, %s or --role)", c.Role, EnvRole)
	}
	switch c.Lease {
	case "", LeaseOn, LeaseOff:
	default:
		add("lease %q is not one of on, off", c.Lease)
	}
	switch reconciler.Topology(c.Topology) {
	case reconciler.PerProfile, reconciler.Multiplex:
	default:
		add("topology %q is not one of %s, %s", c.Topology, reconciler.PerProfile, reconciler.Multiplex)
	}
	switch reconciler.Fallback(c.Multiplex.Fallback) {
	case reconciler.FallbackNone, reconciler.FallbackOwnSlot:
	default:
		add("multiplex.fallback %q is not one of %s, %s", c.Multiplex.Fallback, reconciler.FallbackNone, reconciler.FallbackOwnSlot)
	}
	if c.GatewayUser != "" && !gatewayUserRE.MatchString(c.GatewayUser) {
		add("gatewayUser %q is not a valid account name", c.GatewayUser)
	}
	for _, k := range sortedKeys(c.ExtraEnv) {
		if !reconciler.ValidEnvKey(k) {
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
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}
