// Command fakegateway stands in for the hermes gateway in the e2e suite. It follows the parts of
// the gateway's contract that the controller depends on:
//
//   - gateway_state.json is persisted read-merge-write (temp file in the same dir, fsync, rename,
//     compact JSON), and every key it does not own (desired_state above all) survives;
//   - startup writes "starting", then "running" after FAKE_GATEWAY_START_DELAY (default 200ms);
//   - a "fatal-config" file next to the state file means a fatal config error: it persists
//     "startup_failed" and exits 78;
//   - SIGTERM/SIGINT with a ".planned-stop" marker next to the state file is a planned stop: the
//     marker is consumed, "stopped" is persisted and it exits 0. Without the marker the signal is
//     unplanned (docker stop, s6-svc -d from anyone but the hermes CLI): it persists "running" and
//     exits 1, like hermes after PR #43236;
//   - it keeps the lifecycle ledger <profile dir>/state/gateway.lifecycle.json ({"phase":"running",
//     "pid"} at start, {"phase":"exited","exit_code"} on every exit path; a SIGKILL leaves
//     "running"), touches state/gateway.heartbeat every FAKE_GATEWAY_HEARTBEAT (default 1s; "off":
//     never), and lists the profiles it serves as served_profiles in the state file: its own
//     profile, or, when a "fake-serves" file lies next to the state file, the names it holds (one
//     a line). That file is re-read every FAKE_GATEWAY_SERVES_POLL (default 100ms) while the
//     gateway runs, and a change is merged into the state file, so a test can change at runtime
//     what a root gateway in multiplex mode serves (its multiplex guard refusing a profile);
//   - --crash-after D exits 1 after running for D; FAKE_GATEWAY_EXIT_CODE=N exits N right after
//     persisting "running".
//
// A failed persist is logged and never changes the exit code: the profile dir may already be gone.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	exitFatalConfig = 78
	fatalConfigFile = "fatal-config"
	plannedStopFile = ".planned-stop"
	servesFile      = "fake-serves"
)

func main() {
	code := run()
	if ledgerPath != "" {
		// The exit path of the real gateway: the ledger says it exited, and how.
		if err := writeJSON(ledgerPath, map[string]any{"phase": "exited", "pid": os.Getpid(), "exit_code": code}); err != nil {
			logf("ledger: %v", err)
		}
	}
	os.Exit(code)
}

// ledgerPath is <profile dir>/state/gateway.lifecycle.json once the gateway got that far.
var ledgerPath string

// startForensics writes the lifecycle ledger (phase running) and touches the heartbeat every
// FAKE_GATEWAY_HEARTBEAT (default 1s; "off": never), as the real gateway does.
func startForensics(profileDir string) {
	stateDir := filepath.Join(profileDir, "state")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		logf("state dir: %v", err)
		return
	}
	ledgerPath = filepath.Join(stateDir, "gateway.lifecycle.json")
	if err := writeJSON(ledgerPath, map[string]any{"phase": "running", "pid": os.Getpid()}); err != nil {
		logf("ledger: %v", err)
	}
	if os.Getenv("FAKE_GATEWAY_HEARTBEAT") == "off" {
		return
	}
	every, err := envDuration("FAKE_GATEWAY_HEARTBEAT", time.Second)
	if err != nil || every <= 0 {
		every = time.Second
	}
	beat := filepath.Join(stateDir, "gateway.heartbeat")
	touch := func() {
		if err := os.WriteFile(beat, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
			logf("heartbeat: %v", err)
		}
	}
	touch()
	go func() {
		for range time.Tick(every) {
			touch()
		}
	}()
}

// writeJSON replaces path atomically with v as compact JSON.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicWrite(path, b)
}

func run() int {
	stateFile := flag.String("state-file", "", "the profile's gateway_state.json (required)")
	crashAfter := flag.Duration("crash-after", 0, "exit 1 after running this long (0: never)")
	flag.Parse()
	if *stateFile == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: fakegateway --state-file PATH [--crash-after DURATION]")
		return 2
	}
	startDelay, err := envDuration("FAKE_GATEWAY_START_DELAY", 200*time.Millisecond)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakegateway:", err)
		return 2
	}
	exitCode, hasExitCode, err := envInt("FAKE_GATEWAY_EXIT_CODE")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakegateway:", err)
		return 2
	}

	// Subscribe before the first write so a signal during startup is never lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	dir := filepath.Dir(*stateFile)
	if exists(filepath.Join(dir, fatalConfigFile)) {
		persist(*stateFile, "startup_failed")
		logf("fatal config error, exiting %d", exitFatalConfig)
		return exitFatalConfig
	}

	startForensics(dir)
	persist(*stateFile, "starting")
	select {
	case sig := <-sigs:
		return stop(*stateFile, sig)
	case <-time.After(startDelay):
	}
	persist(*stateFile, "running")
	logf("running (pid %d)", os.Getpid())
	go watchServes(*stateFile)
	if hasExitCode {
		logf("FAKE_GATEWAY_EXIT_CODE set, exiting %d", exitCode)
		return exitCode
	}

	var crash <-chan time.Time
	if *crashAfter > 0 {
		crash = time.After(*crashAfter)
	}
	select {
	case sig := <-sigs:
		return stop(*stateFile, sig)
	case <-crash:
		logf("crashing after %s", *crashAfter)
		return 1
	}
}

// stop handles a shutdown signal: planned (marker present) or not.
func stop(stateFile string, sig os.Signal) int {
	marker := filepath.Join(filepath.Dir(stateFile), plannedStopFile)
	if err := os.Remove(marker); err == nil {
		persist(stateFile, "stopped")
		logf("planned stop on %v", sig)
		return 0
	}
	persist(stateFile, "running")
	logf("unplanned %v: persisted running so the next boot starts the gateway again", sig)
	return 1
}

// persist merges gateway_state, pid and updated_at into the state file, logging any failure.
func persist(stateFile, gatewayState string) {
	fields := map[string]any{
		"gateway_state":   gatewayState,
		"pid":             os.Getpid(),
		"updated_at":      time.Now().UTC().Format(time.RFC3339),
		"served_profiles": servedProfiles(stateFile),
	}
	if err := mergeWrite(stateFile, fields); err != nil {
		logf("persist %s: %v", gatewayState, err)
	}
}

// servedProfiles is what the gateway lists as served: the lines of the fake-serves file next to
// the state file when there is one, else its own profile.
func servedProfiles(stateFile string) []string {
	data, err := os.ReadFile(filepath.Join(filepath.Dir(stateFile), servesFile))
	if err != nil {
		return []string{profileName(stateFile)}
	}
	out := []string{}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// watchServes merges a change of servedProfiles into the state file, polling.
func watchServes(stateFile string) {
	every, err := envDuration("FAKE_GATEWAY_SERVES_POLL", 100*time.Millisecond)
	if err != nil || every <= 0 {
		every = 100 * time.Millisecond
	}
	last := strings.Join(servedProfiles(stateFile), "\n")
	for range time.Tick(every) {
		now := servedProfiles(stateFile)
		if key := strings.Join(now, "\n"); key != last {
			last = key
			if err := mergeWrite(stateFile, map[string]any{"served_profiles": now}); err != nil {
				logf("persist served_profiles: %v", err)
			} else {
				logf("serving %v", now)
			}
		}
	}
}

// profileName is the profile a state file belongs to: <name> for profiles/<name>/, else the
// root profile "default". (The real gateway in multiplex mode lists every profile it serves.)
func profileName(stateFile string) string {
	dir := filepath.Dir(stateFile)
	if filepath.Base(filepath.Dir(dir)) == "profiles" {
		return filepath.Base(dir)
	}
	return "default"
}

// writeMu serialises the read-merge-writes of the state file (watchServes runs beside the main
// flow).
var writeMu sync.Mutex

// mergeWrite lays fields over the JSON object on disk (a missing or unparsable file counts as
// empty) and replaces the file atomically with the compact result.
func mergeWrite(path string, fields map[string]any) error {
	writeMu.Lock()
	defer writeMu.Unlock()
	record := map[string]any{}
	if data, err := os.ReadFile(path); err == nil {
		var onDisk map[string]any
		if json.Unmarshal(data, &onDisk) == nil && onDisk != nil {
			record = onDisk
		}
	}
	for k, v := range fields {
		record[k] = v
	}
	data, err := json.Marshal(record)
	if err != nil {
		return err
	}
	return atomicWrite(path, data)
}

func atomicWrite(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gateway_state_*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func envDuration(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

func envInt(key string) (int, bool, error) {
	v := os.Getenv(key)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", key, err)
	}
	if n < 0 || n > 255 {
		return 0, false, fmt.Errorf("%s: %d is not an exit code", key, n)
	}
	return n, true, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fakegateway[%d]: %s\n", os.Getpid(), fmt.Sprintf(format, args...))
}
