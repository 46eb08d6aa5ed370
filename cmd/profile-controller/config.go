package main

// TODO(helper): decoding (strict YAML with line numbers and did-you-mean), environment, flag
// overlay, defaults and validation land here; the struct below is the agreed shape.

import "time"

// Config is the controller's configuration: --config YAML, then environment, then flags.
type Config struct {
	// HermesHome is the persistent volume (default /opt data; env HERMES_HOME).
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
	// GatewayUser owns the supervise skeleton and runs the gateway (empty: no drop, no skeleton).
	GatewayUser string `json:"gatewayUser,omitempty"`
	// ExtraEnv is exported in every run script, as shell-quoted export lines sorted by key.
	ExtraEnv map[string]string `json:"extraEnv,omitempty"`
	// Templates override the rendered service files (Go text/template).
	Templates Templates `json:"templates,omitempty"`
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

// Duration is a time.Duration that decodes from "10s"-style strings.
type Duration struct{ time.Duration }
