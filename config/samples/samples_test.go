// Package samples holds no code: its tests check the sample tree in config/samples, the files an
// image or a host installs to run profile-controller. They check what s6-rc-compile and
// s6-overlay would refuse or silently ignore (s6-rc itself is not packaged on Debian bookworm, so
// its compile rules are applied here, not run), the scripts' syntax and
// paths, the Dockerfile fragment against the tree, and that the real binary accepts the sample
// configs and the longrun's command line, including its readiness notification. Nothing here
// needs root.
package samples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// Where the scripts expect things in the image, and so where the Dockerfile must put them.
const (
	binaryPath = "/usr/local/bin/profile-controller"
	configPath = "/etc/profile-controller/config.yaml"
	longrun    = "s6-rc.d/profile-controller"
)

// kind is what a file of the s6-overlay tree is.
type kind int

const (
	script kind = iota // executable, starts with #!
	data               // a short value s6 or s6-rc reads
	empty              // an empty marker (a dependency, a bundle member)
)

// tree is every file of config/samples/s6-overlay: nothing may be missing and nothing extra.
var tree = map[string]kind{
	"cont-init.d/02-profile-controller":                 script,
	longrun + "/type":                                   data,
	longrun + "/run":                                    script,
	longrun + "/finish":                                 script,
	longrun + "/notification-fd":                        data,
	longrun + "/timeout-down":                           data,
	longrun + "/dependencies.d/base":                    empty,
	"user-bundles.d/user/contents.d/profile-controller": empty,
}

// installedAt maps a tree path to where s6-overlay reads it in the image.
func installedAt(rel string) string {
	switch {
	case strings.HasPrefix(rel, "cont-init.d/"):
		return "/etc/" + rel
	default: // s6-rc.d/ and user-bundles.d/
		return "/etc/s6-overlay/" + rel
	}
}

// longrunFiles are the names s6-rc-compile (0.7) reads in a longrun's source directory. It
// ignores any other name without a word, so a typo such as notification_fd would silently
// drop readiness.
var longrunFiles = []string{
	"type", "run", "finish", "notification-fd", "lock-fd", "timeout-up", "timeout-down",
	"timeout-kill", "timeout-finish", "max-death-tally", "down-signal", "reload-signal",
	"flag-timeout-killpg", "flag-newpidns", "flag-essential", "flag-recommended",
	"dependencies", "dependencies.d", "producer-for", "consumer-for", "pipeline-name",
	"template", "data", "env",
}

// overlayServices are the services s6-overlay v3 defines itself (its own s6-rc sources and the
// user bundles); a sample service may depend on them.
var overlayServices = []string{"base", "fix-attrs", "legacy-cont-init", "legacy-services", "top", "user", "user2"}

var bin string // the profile-controller binary, built once by TestMain

func TestMain(m *testing.M) {
	code, err := runWithBinary(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "samples:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// runWithBinary builds cmd/profile-controller into a temp dir, runs the tests and removes it.
func runWithBinary(m *testing.M) (int, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return 0, fmt.Errorf("the go command is needed to build the binary under test: %w", err)
	}
	dir, err := os.MkdirTemp("", "samples-bin-")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "samples: could not remove the binary under test:", err)
		}
	}()
	bin = filepath.Join(dir, "profile-controller")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/profile-controller")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build ./cmd/profile-controller: %w\n%s", err, out)
	}
	return m.Run(), nil
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(rel)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFilesAreClean: no CRLF, no BOM, valid UTF-8 and a final newline in every sample file. A
// CRLF in a script's first line makes the kernel look for "sh\r"; s6-rc-compile would read
// "longrun\r" as an invalid type.
func TestFilesAreClean(t *testing.T) {
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(b, []byte("\xef\xbb\xbf")):
			t.Errorf("%s starts with a UTF-8 BOM", p)
		case bytes.Contains(b, []byte("\r")):
			t.Errorf("%s has a carriage return (CRLF line ends?)", p)
		case !utf8.Valid(b):
			t.Errorf("%s is not valid UTF-8", p)
		case len(b) > 0 && b[len(b)-1] != '\n':
			t.Errorf("%s does not end with a newline", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestS6OverlayTree: exactly the expected files, scripts executable, everything else not.
func TestS6OverlayTree(t *testing.T) {
	root := "s6-overlay"
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		k, ok := tree[rel]
		if !ok {
			t.Errorf("%s: not an expected file of the tree (add it to the tree table and the Dockerfile, or remove it)", p)
			return nil
		}
		seen[rel] = true
		if !fi.Mode().IsRegular() {
			t.Errorf("%s: %v, want a regular file", p, fi.Mode().Type())
			return nil
		}
		exe := fi.Mode().Perm()&0o111 != 0
		switch k {
		case script:
			if fi.Mode().Perm()&0o755 != 0o755 {
				t.Errorf("%s: mode %v, want 0755 (a script)", p, fi.Mode().Perm())
			}
		case data, empty:
			if exe {
				t.Errorf("%s: mode %v, want 0644 (not a script)", p, fi.Mode().Perm())
			}
		}
		if k == empty && fi.Size() != 0 {
			t.Errorf("%s: %d bytes, want an empty file", p, fi.Size())
		}
		if k == data && (fi.Size() == 0 || fi.Size() > 64) {
			t.Errorf("%s: %d bytes, want a short value", p, fi.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel := range tree {
		if !seen[rel] {
			t.Errorf("%s/%s is missing", root, rel)
		}
	}
}

// uintFile reads a file s6-rc-compile reads as a decimal number (trailing newlines allowed).
func uintFile(t *testing.T, p string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimRight(read(t, p), "\n"), 10, 32)
	if err != nil {
		t.Errorf("%s: s6-rc-compile would refuse it: want a decimal number: %v", p, err)
	}
	return v
}

// TestS6RCSourceDefinitions applies s6-rc-compile's rules (as of s6-rc 0.7, read from its
// source) to the sample's source directories, together with s6-overlay's own services, and
// s6-overlay's rule for where the user bundle lives.
func TestS6RCSourceDefinitions(t *testing.T) {
	srcDir := filepath.Join("s6-overlay", "s6-rc.d")
	entries, err := os.ReadDir(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	defined := slices.Clone(overlayServices)
	for _, e := range entries {
		defined = append(defined, e.Name())
	}
	for _, e := range entries {
		name := e.Name()
		dir := filepath.Join(srcDir, name)
		t.Run(name, func(t *testing.T) {
			if name == "user" || name == "user2" {
				t.Fatalf("%s: with s6-rc.d/user present, s6-overlay ignores user-bundles.d and defines the user bundles here: keep bundle membership in user-bundles.d", dir)
			}
			if strings.HasPrefix(name, "s6rc-") || strings.HasPrefix(name, "s6-rc-") || strings.HasPrefix(name, ".") {
				t.Errorf("%s: reserved or hidden name", dir)
			}
			if !e.IsDir() {
				t.Fatalf("%s: not a directory (s6-rc-compile skips it)", dir)
			}
			typ := strings.TrimSuffix(read(t, filepath.Join(dir, "type")), "\n")
			if typ != "longrun" {
				t.Fatalf("%s/type is %q; the sample defines longruns only", dir, typ)
			}
			files, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if !slices.Contains(longrunFiles, f.Name()) {
					t.Errorf("%s/%s: s6-rc-compile ignores this name without a word", dir, f.Name())
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, "run")); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s/run: a longrun needs a regular run file (%v)", dir, err)
			}
			notif := uint64(0)
			if _, err := os.Stat(filepath.Join(dir, "notification-fd")); err == nil {
				if notif = uintFile(t, filepath.Join(dir, "notification-fd")); notif < 3 {
					t.Errorf("%s/notification-fd is %d: fds 0-2 are the service's stdio", dir, notif)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "lock-fd")); err == nil && uintFile(t, filepath.Join(dir, "lock-fd")) == notif {
				t.Errorf("%s: lock-fd and notification-fd are the same fd", dir)
			}
			for _, f := range []string{"timeout-up", "timeout-down", "timeout-kill", "timeout-finish", "max-death-tally"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					uintFile(t, filepath.Join(dir, f))
				}
			}
			deps, err := os.ReadDir(filepath.Join(dir, "dependencies.d"))
			if err != nil {
				t.Fatalf("%s: give every service dependencies.d/base (s6-overlay's advice), so it starts after cont-init.d: %v", dir, err)
			}
			for _, d := range deps {
				if !slices.Contains(defined, d.Name()) {
					t.Errorf("%s/dependencies.d/%s: no such service in the sample or in s6-overlay", dir, d.Name())
				}
			}
			if !slices.ContainsFunc(deps, func(d os.DirEntry) bool { return d.Name() == "base" }) {
				t.Errorf("%s: no dependencies.d/base: the service could start before cont-init.d has run the boot pass", dir)
			}
		})
	}
	members, err := os.ReadDir(filepath.Join("s6-overlay", "user-bundles.d", "user", "contents.d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if !slices.Contains(defined, m.Name()) {
			t.Errorf("user-bundles.d/user/contents.d/%s: no such service", m.Name())
		}
	}
	if !slices.ContainsFunc(members, func(m os.DirEntry) bool { return m.Name() == "profile-controller" }) {
		t.Errorf("the profile-controller longrun is not in the user bundle: s6-overlay would never start it")
	}
}

// scripts lists the tree's scripts.
func scripts() []string {
	var out []string
	for rel, k := range tree {
		if k == script {
			out = append(out, filepath.Join("s6-overlay", rel))
		}
	}
	slices.Sort(out)
	return out
}

// execLine returns the fields of a script's last `exec` line.
func execLine(t *testing.T, p string) []string {
	t.Helper()
	var last []string
	for _, l := range strings.Split(read(t, p), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "exec" {
			last = f[1:]
		}
	}
	return last
}

// TestScripts: each script parses (sh -n), starts with an absolute interpreter s6-overlay has,
// and calls the binary and the config by the absolute paths the Dockerfile installs.
func TestScripts(t *testing.T) {
	for _, p := range scripts() {
		t.Run(p, func(t *testing.T) {
			if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", p, err, out)
			}
			first, _, _ := strings.Cut(read(t, p), "\n")
			switch first {
			case "#!/command/with-contenv sh", "#!/bin/sh":
			default:
				t.Errorf("%s: first line %q, want #!/command/with-contenv sh (sees the container's environment) or #!/bin/sh", p, first)
			}
			if strings.HasSuffix(p, "/finish") {
				return
			}
			f := execLine(t, p)
			if len(f) < 3 || f[0] != binaryPath || f[1] != "--config" || f[2] != configPath {
				t.Errorf("%s: exec line %q, want `exec %s --config %s ...`: the cont-init and s6-rc environments have no PATH to rely on", p, strings.Join(f, " "), binaryPath, configPath)
			}
		})
	}
}

// TestFinish runs the longrun's finish script: exit 2 (configuration error) stops restarts
// (125) with one line saying so; anything else lets s6 restart the controller.
func TestFinish(t *testing.T) {
	finish := filepath.Join("s6-overlay", longrun, "finish")
	for _, tt := range []struct {
		name       string
		args       []string
		want       int
		wantStderr string
	}{
		{"configuration error", []string{"2", "0"}, 125, "configuration error (exit 2), not restarting"},
		{"failure", []string{"1", "0"}, 0, ""},
		{"clean exit", []string{"0", "0"}, 0, ""},
		{"killed by SIGKILL", []string{"256", "9"}, 0, ""},
		{"killed by SIGTERM", []string{"256", "15"}, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", append([]string{finish}, tt.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Errorf("finish %v: exit %d, want %d", tt.args, code, tt.want)
			}
			if got := stderr.String(); tt.wantStderr == "" && got != "" || !strings.Contains(got, tt.wantStderr) {
				t.Errorf("finish %v: stderr %q, want %q", tt.args, got, tt.wantStderr)
			}
		})
	}
}

// TestDockerfile checks the Dockerfile fragment against the tree: every file is copied to where
// s6-overlay reads it, scripts are made executable, the replaced upstream script is removed and
// the s6-rc.d/user trap is handled.
func TestDockerfile(t *testing.T) {
	df := read(t, "hermes-image.Dockerfile")
	// Join continuation lines.
	df = strings.ReplaceAll(df, "\\\n", " ")
	copyRE := regexp.MustCompile(`(?m)^COPY --from=(\S+) (\S+) (\S+)$`)
	type cp struct{ src, dst string }
	var copies []cp
	var binaryCopied bool
	for _, m := range copyRE.FindAllStringSubmatch(df, -1) {
		switch m[1] {
		case "profile-controller":
			copies = append(copies, cp{m[2], m[3]})
		case "profile-controller-build":
			binaryCopied = binaryCopied || m[3] == binaryPath
		}
	}
	if !binaryCopied {
		t.Errorf("the binary is not copied to %s, where the scripts call it", binaryPath)
	}
	dest := func(repoPath string) string {
		for _, c := range copies {
			if c.src == repoPath {
				return c.dst
			}
			if strings.HasSuffix(c.src, "/") && strings.HasPrefix(repoPath, c.src) {
				return c.dst + strings.TrimPrefix(repoPath, c.src)
			}
		}
		return ""
	}
	if got := dest("config/samples/hermes-image.yaml"); got != configPath {
		t.Errorf("hermes-image.yaml is installed at %q, want %s (the scripts' --config)", got, configPath)
	}
	var runLines []string
	for _, l := range strings.Split(df, "\n") {
		if strings.HasPrefix(l, "RUN ") {
			runLines = append(runLines, l)
		}
	}
	run := strings.Join(runLines, "\n")
	chmod755 := regexp.MustCompile(`chmod 0755 ([^;]+);`).FindStringSubmatch(run)
	for rel, k := range tree {
		got := dest("config/samples/s6-overlay/" + rel)
		if got != installedAt(rel) {
			t.Errorf("s6-overlay/%s is installed at %q, want %s", rel, got, installedAt(rel))
		}
		if k == script && (chmod755 == nil || !slices.Contains(strings.Fields(chmod755[1]), got)) {
			t.Errorf("%s is not made executable (chmod 0755) by the RUN step", got)
		}
	}
	for _, want := range []string{
		"rm -f /etc/cont-init.d/02-reconcile-profiles",
		"if [ -d /etc/s6-overlay/s6-rc.d/user ]",
		": > /etc/s6-overlay/s6-rc.d/user/contents.d/profile-controller",
		"chmod 0644 " + configPath,
	} {
		if !strings.Contains(run, want) {
			t.Errorf("the RUN step lacks %q", want)
		}
	}
}

// TestReadmeNamesEveryFile: the samples README describes every file.
func TestReadmeNamesEveryFile(t *testing.T) {
	readme := read(t, "README.md")
	names := []string{"hermes-image.yaml", "debian-host.yaml", "hermes-image.Dockerfile"}
	for rel := range tree {
		names = append(names, rel)
	}
	for _, n := range names {
		if !strings.Contains(readme, n) {
			t.Errorf("README.md does not mention %s", n)
		}
	}
}

// sandbox makes a HERMES_HOME, a scandir and a runtime dir, and returns the flags that point the
// binary at them, so that nothing of the machine is read or written. The s6 binaries dir is
// empty: no s6 command can run.
func sandbox(t *testing.T) []string {
	t.Helper()
	tmp := t.TempDir()
	for _, d := range []string{"home/profiles/coder", "service", "s6bin"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "home/profiles/coder/SOUL.md"), []byte("# coder\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{
		"--hermes-home", filepath.Join(tmp, "home"), "--scandir", filepath.Join(tmp, "service"),
		"--runtime-dir", filepath.Join(tmp, "run"), "--s6-bin-dir", filepath.Join(tmp, "s6bin"),
	}
}

// installConfig copies a sample config to a private file (mode 0600, owned by whoever runs the
// test: the controller's ownership rule then holds without root), with extra appended.
func installConfig(t *testing.T, sample, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(read(t, sample)+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gatewayUserFlags keeps the sample's gatewayUser when that account exists here, and otherwise
// replaces it with the current user (the hermes user exists only in the image).
func gatewayUserFlags(t *testing.T, sample string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^gatewayUser:\s*"?([^"\s]*)"?\s*$`).FindStringSubmatch(read(t, sample))
	if m == nil || m[1] == "" {
		return nil
	}
	if _, err := user.Lookup(m[1]); err == nil {
		return nil
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--gateway-user", me.Username}
}

func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}

// cleanEnv is the environment without the variables the controller reads.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "HERMES_HOME=") || strings.HasPrefix(kv, "S6_PROFILE_GATEWAY_SCANDIR=")
	})
}

// TestBinaryAcceptsSampleConfigs loads, validates and uses each sample config with the real
// binary (`plan` builds the whole controller and reads the sandbox), and checks that the same
// config with a misspelt field is refused with exit 2, so that the check is not vacuous.
func TestBinaryAcceptsSampleConfigs(t *testing.T) {
	for _, sample := range []string{"hermes-image.yaml", "debian-host.yaml"} {
		t.Run(sample, func(t *testing.T) {
			args := append([]string{"--config", installConfig(t, sample, "")}, sandbox(t)...)
			args = append(args, gatewayUserFlags(t, sample)...)
			if out, code := runBinary(t, append(args, "plan")...); code != 0 {
				t.Errorf("profile-controller %s plan: exit %d\n%s", strings.Join(args, " "), code, out)
			}
			args[1] = installConfig(t, sample, "resyncPeriood: 10s\n")
			if out, code := runBinary(t, append(args, "plan")...); code != 2 || !strings.Contains(out, "resyncPeriood") {
				t.Errorf("a misspelt field: exit %d, want 2 and an error naming it\n%s", code, out)
			}
		})
	}
}

// startLongrun starts the longrun's exec line as s6-supervise would: through sh, with fd 3 the
// write end of a pipe (notification-fd), with the binary and config paths replaced by the test's
// and the sandbox flags appended. It returns the command and the read end of the pipe.
func startLongrun(t *testing.T, cfg string, extra []string) (*exec.Cmd, *os.File, *syncBuffer) {
	t.Helper()
	f := execLine(t, filepath.Join("s6-overlay", longrun, "run"))
	if len(f) < 3 {
		t.Fatalf("no exec line in the run script")
	}
	f[0], f[2] = bin, cfg
	args := append(f, extra...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'"'"'`)+"'")
	}
	cmd := exec.Command("sh", "-c", "exec "+strings.Join(quoted, " "))
	cmd.Env = cleanEnv()
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // only the child holds the write end now: EOF means it closed fd 3 or exited
	t.Cleanup(func() {
		r.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, r, out
}

// syncBuffer collects a child's output; it is read while the child may still be writing.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readNotification returns what the controller wrote on fd 3 until it closed it, exited or
// timeout passed.
func readNotification(r *os.File, timeout time.Duration) (string, error) {
	if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	return line, err
}

// waitExit waits up to timeout for cmd to exit and returns its exit code (-1 for a signal).
func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		t.Fatalf("still running after %s (then killed: %v)", timeout, <-done)
		return 0
	}
}

// TestLongrunSignalsReadiness runs the longrun's own command line: the controller does its
// boot pass (no cont-init script ran in the sandbox), writes one newline on fd 3 once it is
// watching, and exits 0 soon after SIGTERM.
func TestLongrunSignalsReadiness(t *testing.T) {
	sample := "hermes-image.yaml"
	extra := append(sandbox(t), gatewayUserFlags(t, sample)...)
	cmd, r, out := startLongrun(t, installConfig(t, sample, ""), extra)
	line, err := readNotification(r, 30*time.Second)
	if line != "\n" {
		t.Fatalf("no readiness newline on fd 3 (got %q, %v); a run script with notification-fd needs `run --notify-fd 3` to notify once ready, or s6-overlay waits for it forever\n%s", line, err, out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 5*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0\n%s", code, out)
	}
}

// TestLongrunExitsOnConfigError: with a bad config the longrun's command exits 2 at once,
// without notifying (so s6-rc does not take it for ready), and finish turns that into 125.
func TestLongrunExitsOnConfigError(t *testing.T) {
	sample := "hermes-image.yaml"
	cmd, r, out := startLongrun(t, installConfig(t, sample, "resyncPeriood: 10s\n"), sandbox(t))
	if code := waitExit(t, cmd, 10*time.Second); code != 2 {
		t.Fatalf("exit %d with a misspelt config field, want 2\n%s", code, out)
	}
	if line, _ := readNotification(r, time.Second); line != "" {
		t.Errorf("wrote %q on fd 3 before exiting with a configuration error", line)
	}
	finish := exec.Command("sh", filepath.Join("s6-overlay", longrun, "finish"), "2", "0")
	var ee *exec.ExitError
	if err := finish.Run(); !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Errorf("finish 2 0: %v, want exit 125", err)
	}
}
