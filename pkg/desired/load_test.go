package desired

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hermes/profile-controller/internal/hostile"
)

// deadline bounds every Load in these tests: a FIFO opened for reading would block forever.
const deadline = 10 * time.Second

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	hostile.WriteFile(t, path, data, 0o644)
}

func mkdir(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// addProfile creates profiles/<name>/SOUL.md and, unless state is "", its gateway_state.json.
func addProfile(t testing.TB, home, name, state string) string {
	t.Helper()
	dir := filepath.Join(home, ProfilesDirName, name)
	writeFile(t, filepath.Join(dir, SoulFileName), "# soul\n")
	if state != "" {
		writeFile(t, filepath.Join(dir, StateFileName), state)
	}
	return dir
}

func load(t *testing.T, home string) State {
	t.Helper()
	return hostile.WithinValue(t, deadline, Loader{Home: home}.Load)
}

func names(ps []Profile) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func problemText(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %s: %v\n", p.Name, p.Path, p.Err)
	}
	return b.String()
}

// theProblem returns the one problem of problems when want (a problem the test expects) is set,
// failing the test unless there is exactly one. With want "" it fails the test on any problem
// and returns false: there is nothing more to check.
func theProblem(t *testing.T, problems []Problem, want string) (Problem, bool) {
	t.Helper()
	if want == "" {
		if len(problems) != 0 {
			t.Errorf("unexpected problems:\n%s", problemText(problems))
		}
		return Problem{}, false
	}
	if len(problems) != 1 {
		t.Fatalf("want exactly one problem, got:\n%s", problemText(problems))
	}
	return problems[0], true
}

func TestLoadOrderAndDefaultFirst(t *testing.T) {
	home := t.TempDir()
	for _, n := range []string{"writer", "assistant", "coder", "my-profile", "0abc", "a_b", "a-b", "z"} {
		addProfile(t, home, n, "")
	}
	st := load(t, home)
	want := []string{"default", "0abc", "a-b", "a_b", "assistant", "coder", "my-profile", "writer", "z"}
	if diff := cmp.Diff(want, names(st.Profiles)); diff != "" {
		t.Errorf("profile order (-want +got):\n%s", diff)
	}
	if !st.Listed || st.ListErr != nil || len(st.Problems) != 0 {
		t.Errorf("Listed=%v ListErr=%v Problems:\n%s", st.Listed, st.ListErr, problemText(st.Problems))
	}
	root := st.Profiles[0]
	if root.Dir != home || root.Port != 9449 || root.Slot() != "gateway-default" {
		t.Errorf("root profile = %+v", root)
	}
	for _, p := range st.Profiles[1:] {
		if p.Dir != filepath.Join(home, ProfilesDirName, p.Name) || p.Port != Port(p.Name) {
			t.Errorf("profile %s: Dir %s, Port %d", p.Name, p.Dir, p.Port)
		}
		if p.BootIntent != Down || p.Intent != Hold || p.HasStateFile || p.Warning != "" {
			t.Errorf("profile %s without a state file: %+v", p.Name, p)
		}
	}
	wantPresent := map[string]bool{}
	for _, n := range want[1:] {
		wantPresent[n] = true
	}
	if diff := cmp.Diff(wantPresent, st.Present); diff != "" {
		t.Errorf("Present (-want +got):\n%s", diff)
	}
}

// TestLoadEntries puts one entry of interest next to a valid profile and checks how it is handled.
func TestLoadEntries(t *testing.T) {
	soul := func(name string) func(t *testing.T, home string) {
		return func(t *testing.T, home string) { addProfile(t, home, name, `{"desired_state":"running"}`) }
	}
	tests := []struct {
		name        string
		entry       string
		setup       func(t *testing.T, home string)
		wantLoaded  bool
		wantProblem string // substring of the problem for entry; "" means no problem
		wantPresent bool
	}{
		{name: "valid", entry: "assistant", setup: soul("assistant"), wantLoaded: true, wantPresent: true},
		{name: "valid 242-byte name", entry: strings.Repeat("a", 242), setup: soul(strings.Repeat("a", 242)), wantLoaded: true, wantPresent: true},
		{name: "dir without SOUL.md", entry: "notes",
			setup:       func(t *testing.T, home string) { mkdir(t, filepath.Join(home, "profiles", "notes")) },
			wantPresent: true},
		{name: "SOUL.md only in a subdir", entry: "nested",
			setup: func(t *testing.T, home string) {
				writeFile(t, filepath.Join(home, "profiles", "nested", "x", "SOUL.md"), "")
			},
			wantPresent: true},
		{name: "regular file", entry: "file",
			setup:       func(t *testing.T, home string) { writeFile(t, filepath.Join(home, "profiles", "file"), "x") },
			wantPresent: true},
		{name: "FIFO entry", entry: "pipe",
			setup: func(t *testing.T, home string) {
				hostile.Special(t, hostile.FIFO, filepath.Join(home, "profiles", "pipe"))
			},
			wantPresent: true},
		{name: "dot dir with SOUL.md", entry: ".hidden", setup: soul(".hidden")},
		{name: "staging-like dot dir", entry: ".coder.tmp", setup: soul(".coder.tmp")},
		{name: "dot symlink", entry: ".link",
			setup: func(t *testing.T, home string) { hostile.Symlink(t, "/", filepath.Join(home, "profiles", ".link")) }},
		{name: "symlinked profile dir", entry: "linked",
			setup: func(t *testing.T, home string) {
				outside := t.TempDir()
				writeFile(t, filepath.Join(outside, "SOUL.md"), "")
				writeFile(t, filepath.Join(outside, StateFileName), `{"desired_state":"running"}`)
				hostile.Symlink(t, outside, filepath.Join(home, "profiles", "linked"))
			},
			wantProblem: "is a symlink, not followed", wantPresent: true},
		{name: "symlink to a sibling profile", entry: "alias",
			setup:       func(t *testing.T, home string) { hostile.Symlink(t, "coder", filepath.Join(home, "profiles", "alias")) },
			wantProblem: "is a symlink", wantPresent: true},
		{name: "dangling symlink", entry: "dangling",
			setup: func(t *testing.T, home string) {
				hostile.Symlink(t, "/nonexistent", filepath.Join(home, "profiles", "dangling"))
			},
			wantProblem: "is a symlink", wantPresent: true},
		{name: "SOUL.md symlink", entry: "soullink",
			setup: func(t *testing.T, home string) {
				writeFile(t, filepath.Join(home, "soul-elsewhere.md"), "")
				mkdir(t, filepath.Join(home, "profiles", "soullink"))
				hostile.Symlink(t, filepath.Join(home, "soul-elsewhere.md"), filepath.Join(home, "profiles", "soullink", "SOUL.md"))
			},
			wantProblem: "SOUL.md is a symlink, not followed", wantPresent: true},
		{name: "SOUL.md FIFO", entry: "soulfifo",
			setup: func(t *testing.T, home string) {
				mkdir(t, filepath.Join(home, "profiles", "soulfifo"))
				hostile.Special(t, hostile.FIFO, filepath.Join(home, "profiles", "soulfifo", "SOUL.md"))
			},
			wantProblem: "SOUL.md is a FIFO, not a regular file", wantPresent: true},
		{name: "SOUL.md directory", entry: "souldir",
			setup:       func(t *testing.T, home string) { mkdir(t, filepath.Join(home, "profiles", "souldir", "SOUL.md")) },
			wantProblem: "SOUL.md is a directory", wantPresent: true},
		{name: "reserved default", entry: "default", setup: soul("default"),
			wantProblem: "profiles/default/ is reserved for the root profile", wantPresent: true},
		{name: "reserved default without SOUL.md", entry: "default",
			setup:       func(t *testing.T, home string) { mkdir(t, filepath.Join(home, "profiles", "default")) },
			wantProblem: "profiles/default/ is reserved", wantPresent: true},
		{name: "invalid name without SOUL.md is not a profile", entry: "Notes",
			setup:       func(t *testing.T, home string) { mkdir(t, filepath.Join(home, "profiles", "Notes")) },
			wantPresent: true},
	}
	for _, bad := range []string{"BadName", "-lead", "_lead", "my profile", "my.profile", "a..b", "a\nb", "$(x)", "a;b", "a\xffb", "caf\u00e9", strings.Repeat("a", 243)} {
		tests = append(tests, struct {
			name        string
			entry       string
			setup       func(t *testing.T, home string)
			wantLoaded  bool
			wantProblem string
			wantPresent bool
		}{name: fmt.Sprintf("invalid name %.20q", bad), entry: bad, setup: soul(bad), wantProblem: "invalid profile name", wantPresent: true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			addProfile(t, home, "coder", `{"gateway_state":"running"}`)
			tt.setup(t, home)
			st := load(t, home)

			if !st.Listed || st.ListErr != nil {
				t.Fatalf("Listed=%v ListErr=%v", st.Listed, st.ListErr)
			}
			got := names(st.Profiles)
			if got[0] != "default" || st.Profiles[0].Dir != home {
				t.Errorf("first profile is not the root: %+v", st.Profiles[0])
			}
			var loaded, coder bool
			for _, p := range st.Profiles[1:] {
				loaded = loaded || p.Name == tt.entry
				coder = coder || p.Name == "coder" && p.Intent == Up
			}
			if !coder {
				t.Errorf("the valid profile next to the entry was not loaded: %q", got)
			}
			if loaded != tt.wantLoaded {
				t.Errorf("entry loaded = %v, want %v (profiles %q)", loaded, tt.wantLoaded, got)
			}
			if st.Present[tt.entry] != tt.wantPresent {
				t.Errorf("Present[%q] = %v, want %v", tt.entry, st.Present[tt.entry], tt.wantPresent)
			}
			pr, ok := theProblem(t, st.Problems, tt.wantProblem)
			if !ok {
				return
			}
			wantPath := filepath.Join(home, "profiles", tt.entry)
			if pr.Name != tt.entry || pr.Path != wantPath {
				t.Errorf("problem names %q at %q, want %q at %q", pr.Name, pr.Path, tt.entry, wantPath)
			}
			msg := pr.Err.Error()
			if !strings.Contains(msg, tt.wantProblem) {
				t.Errorf("problem %q does not contain %q", msg, tt.wantProblem)
			}
			if !strings.Contains(msg, fmt.Sprintf("%q", wantPath)) {
				t.Errorf("problem %q does not name the path %q", msg, wantPath)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("problem is not one line: %q", msg)
			}
		})
	}
}

// bigState returns a gateway_state.json object of exactly size bytes asking for running.
func bigState(size int) string {
	head, tail := `{"desired_state":"running","pad":"`, `"}`
	return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
}

func TestLoadStateFile(t *testing.T) {
	const secret = "TOPSECRET-d41d8cd9"
	file := func(content string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { writeFile(t, path, content) }
	}
	tests := []struct {
		name          string
		setup         func(t *testing.T, path string) // path is the gateway_state.json to create
		hasFile       bool
		boot, runtime Intent
		desired, gw   string
		warn          string // substring of the warning; "" means none
	}{
		{name: "no file", setup: func(*testing.T, string) {}, boot: Down, runtime: Hold},
		{name: "running", setup: file(`{"gateway_state":"running","pid":7}`), hasFile: true, boot: Up, runtime: Up, gw: "running"},
		{name: "desired beats gateway", setup: file(`{"desired_state":"stopped","gateway_state":"running"}`), hasFile: true,
			boot: Down, runtime: Down, desired: "stopped", gw: "running"},
		{name: "BOM", setup: file("\xef\xbb\xbf{\"desired_state\":\"running\"}"), hasFile: true, boot: Up, runtime: Up, desired: "running",
			warn: "byte order mark; accepted"},
		{name: "starting", setup: file(`{"gateway_state":"starting"}`), hasFile: true, boot: Down, runtime: Hold, gw: "starting"},
		{name: "desired invalid", setup: file(`{"desired_state":"paused"}`), hasFile: true, boot: Down, runtime: Hold, desired: "paused",
			warn: `desired_state is "paused"`},
		{name: "desired not a string", setup: file(`{"desired_state":1,"gateway_state":"running"}`), hasFile: true, boot: Down, runtime: Hold, gw: "running",
			warn: "desired_state is a number"},
		{name: "exactly 64 KiB", setup: file(bigState(MaxStateFileSize)), hasFile: true, boot: Up, runtime: Up, desired: "running"},
		{name: "64 KiB + 1", setup: file(bigState(MaxStateFileSize + 1)), hasFile: true, boot: Down, runtime: Hold, warn: "file too big: 65537 bytes"},
		{name: "1 GiB sparse", setup: func(t *testing.T, path string) {
			writeFile(t, path, `{"desired_state":"running"}`)
			if err := os.Truncate(path, 1<<30); err != nil {
				t.Fatal(err)
			}
		}, hasFile: true, boot: Down, runtime: Hold, warn: "file too big"},
		{name: "empty file", setup: file(""), hasFile: true, boot: Down, runtime: Hold, warn: "empty"},
		{name: "corrupt JSON", setup: file(`{"desired_state":"running"`), hasFile: true, boot: Down, runtime: Hold, warn: "invalid JSON"},
		{name: "array", setup: file(`[{"desired_state":"running"}]`), hasFile: true, boot: Down, runtime: Hold, warn: "not a JSON object"},
		{name: "trailing garbage", setup: file(`{"desired_state":"running"}garbage`), hasFile: true, boot: Down, runtime: Hold, warn: "trailing data"},
		{name: "invalid UTF-8", setup: file("{\"desired_state\":\"running\",\"x\":\"\xff\"}"), hasFile: true, boot: Down, runtime: Hold, warn: "UTF-8"},
		{name: "FIFO", setup: func(t *testing.T, path string) { hostile.Special(t, hostile.FIFO, path) }, boot: Down, runtime: Hold, warn: "not a regular file: it is a FIFO"},
		{name: "directory", setup: func(t *testing.T, path string) { mkdir(t, path) }, boot: Down, runtime: Hold, warn: "it is a directory"},
		{name: "symlink to a file outside", setup: func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "elsewhere.json")
			writeFile(t, target, `{"desired_state":"running","gateway_state":"running","note":"`+secret+`"}`)
			hostile.Symlink(t, target, path)
		}, boot: Down, runtime: Hold, warn: "is a symlink, not followed"},
		{name: "dangling symlink", setup: func(t *testing.T, path string) { hostile.Symlink(t, "/nonexistent/x.json", path) },
			boot: Down, runtime: Hold, warn: "is a symlink"},
	}
	for _, tt := range tests {
		for _, profile := range []string{DefaultProfile, "coder"} {
			t.Run(tt.name+"/"+profile, func(t *testing.T) {
				home := t.TempDir()
				dir := home
				if profile != DefaultProfile {
					dir = addProfile(t, home, profile, "")
				}
				tt.setup(t, filepath.Join(dir, StateFileName))
				st := load(t, home)
				var p *Profile
				for i := range st.Profiles {
					if st.Profiles[i].Name == profile {
						p = &st.Profiles[i]
					}
				}
				if p == nil {
					t.Fatalf("profile %s not loaded: %q\n%s", profile, names(st.Profiles), problemText(st.Problems))
				}
				if len(st.Problems) != 0 {
					t.Errorf("a state file problem must not skip the profile:\n%s", problemText(st.Problems))
				}
				if p.HasStateFile != tt.hasFile {
					t.Errorf("HasStateFile = %v, want %v", p.HasStateFile, tt.hasFile)
				}
				if p.HasStateFile == p.StateModTime.IsZero() {
					t.Errorf("StateModTime = %v with HasStateFile %v", p.StateModTime, p.HasStateFile)
				}
				if p.BootIntent != tt.boot || p.Intent != tt.runtime {
					t.Errorf("intents = boot %v, runtime %v; want %v, %v", p.BootIntent, p.Intent, tt.boot, tt.runtime)
				}
				if p.DesiredState != tt.desired || p.GatewayState != tt.gw {
					t.Errorf("states = %q/%q, want %q/%q", p.DesiredState, p.GatewayState, tt.desired, tt.gw)
				}
				switch {
				case tt.warn == "" && p.Warning != "":
					t.Errorf("unexpected warning %q", p.Warning)
				case tt.warn != "" && !strings.Contains(p.Warning, tt.warn):
					t.Errorf("warning %q does not contain %q", p.Warning, tt.warn)
				case tt.warn != "" && !strings.HasPrefix(p.Warning, filepath.Join(dir, StateFileName)+": "):
					t.Errorf("warning %q does not start with the file's path", p.Warning)
				case strings.ContainsAny(p.Warning, "\r\n"):
					t.Errorf("warning is not one line: %q", p.Warning)
				}
				if dump := fmt.Sprintf("%+v", st); strings.Contains(dump, secret) {
					t.Errorf("the symlink target was read: %s", dump)
				}
			})
		}
	}
}

func TestLoadStateModTime(t *testing.T) {
	home := t.TempDir()
	dir := addProfile(t, home, "coder", `{"desired_state":"running"}`)
	mtime := time.Date(2026, 11, 21, 23, 30, 21, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, StateFileName), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	st := load(t, home)
	if got := st.Profiles[1].StateModTime; !got.Equal(mtime) {
		t.Errorf("StateModTime = %v, want %v", got, mtime)
	}
}

func TestLoadRoots(t *testing.T) {
	tests := []struct {
		name         string
		setup        func(t *testing.T, home string) string // returns the Home to load
		wantProfiles []string
		wantListed   bool
		wantListErr  string // substring; "" means nil
		wantProblem  string // substring of the only problem; "" means none
		problemPath  func(home string) string
	}{
		{name: "empty profiles/",
			setup:        func(t *testing.T, home string) string { mkdir(t, filepath.Join(home, "profiles")); return home },
			wantProfiles: []string{"default"}, wantListed: true},
		{name: "empty HERMES_HOME (no profiles/)",
			setup:        func(t *testing.T, home string) string { return home },
			wantProfiles: []string{"default"}, wantListErr: "no such file or directory"},
		{name: "profiles/ is a symlink",
			setup: func(t *testing.T, home string) string {
				realDir := filepath.Join(t.TempDir(), "real-profiles")
				writeFile(t, filepath.Join(realDir, "coder", "SOUL.md"), "")
				hostile.Symlink(t, realDir, filepath.Join(home, "profiles"))
				return home
			},
			wantProfiles: []string{"default"}, wantListErr: "is a symlink", wantProblem: "is a symlink",
			problemPath: func(home string) string { return filepath.Join(home, "profiles") }},
		{name: "profiles/ is a file",
			setup: func(t *testing.T, home string) string {
				writeFile(t, filepath.Join(home, "profiles"), "")
				return home
			},
			wantProfiles: []string{"default"}, wantListErr: "not a directory", wantProblem: "not a directory",
			problemPath: func(home string) string { return filepath.Join(home, "profiles") }},
		{name: "HERMES_HOME missing",
			setup:       func(t *testing.T, home string) string { return filepath.Join(home, "absent") },
			wantListErr: "HERMES_HOME cannot be opened", wantProblem: "no profile is served",
			problemPath: func(home string) string { return filepath.Join(home, "absent") }},
		{name: "HERMES_HOME is a file",
			setup: func(t *testing.T, home string) string {
				writeFile(t, filepath.Join(home, "file"), "")
				return filepath.Join(home, "file")
			},
			wantListErr: "not a directory", wantProblem: "HERMES_HOME cannot be opened",
			problemPath: func(home string) string { return filepath.Join(home, "file") }},
		{name: "HERMES_HOME unset",
			setup:       func(t *testing.T, home string) string { return "" },
			wantListErr: "not set", wantProblem: "HERMES_HOME is not set",
			problemPath: func(string) string { return "" }},
		{name: "HERMES_HOME is a symlink (trusted, followed)",
			setup: func(t *testing.T, home string) string {
				addProfile(t, home, "coder", "")
				link := filepath.Join(t.TempDir(), "home-link")
				hostile.Symlink(t, home, link)
				return link
			},
			wantProfiles: []string{"default", "coder"}, wantListed: true},
		{name: "HERMES_HOME with a trailing slash",
			setup: func(t *testing.T, home string) string {
				addProfile(t, home, "coder", "")
				return home + "/"
			},
			wantProfiles: []string{"default", "coder"}, wantListed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			home := tt.setup(t, base)
			st := load(t, home)
			if diff := cmp.Diff(tt.wantProfiles, names(st.Profiles), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("profiles (-want +got):\n%s", diff)
			}
			if st.Listed != tt.wantListed {
				t.Errorf("Listed = %v, want %v", st.Listed, tt.wantListed)
			}
			if len(st.Present) != 0 && !tt.wantListed || st.Present == nil {
				t.Errorf("Present = %v", st.Present)
			}
			switch {
			case tt.wantListErr == "" && st.ListErr != nil:
				t.Errorf("ListErr = %v, want nil", st.ListErr)
			case tt.wantListErr != "" && (st.ListErr == nil || !strings.Contains(st.ListErr.Error(), tt.wantListErr)):
				t.Errorf("ListErr = %v, want it to contain %q", st.ListErr, tt.wantListErr)
			}
			pr, ok := theProblem(t, st.Problems, tt.wantProblem)
			if !ok {
				return
			}
			if pr.Name != "" || pr.Path != tt.problemPath(base) || !strings.Contains(pr.Err.Error(), tt.wantProblem) {
				t.Errorf("problem = %q at %q: %v; want \"\" at %q containing %q", pr.Name, pr.Path, pr.Err, tt.problemPath(base), tt.wantProblem)
			}
		})
	}
}

func TestLoadPresent(t *testing.T) {
	home := t.TempDir()
	addProfile(t, home, "coder", "")
	addProfile(t, home, "BadName", "")
	addProfile(t, home, "default", "")
	addProfile(t, home, ".hidden", "")
	mkdir(t, filepath.Join(home, "profiles", "nosoul"))
	writeFile(t, filepath.Join(home, "profiles", "file.txt"), "")
	writeFile(t, filepath.Join(home, "profiles", ".dotfile"), "")
	hostile.Symlink(t, "coder", filepath.Join(home, "profiles", "link"))
	st := load(t, home)
	want := map[string]bool{"coder": true, "BadName": true, "default": true, "nosoul": true, "file.txt": true, "link": true}
	if diff := cmp.Diff(want, st.Present); diff != "" {
		t.Errorf("Present (-want +got):\n%s", diff)
	}
	if !st.Listed {
		t.Errorf("Listed = false, ListErr %v", st.ListErr)
	}
	if diff := cmp.Diff([]string{"default", "coder"}, names(st.Profiles)); diff != "" {
		t.Errorf("profiles (-want +got):\n%s", diff)
	}
	var problems []string
	for _, p := range st.Problems {
		problems = append(problems, p.Name)
	}
	if diff := cmp.Diff([]string{"BadName", "default", "link"}, problems); diff != "" {
		t.Errorf("problem names (-want +got):\n%s", diff)
	}
}

func TestLoadProfile(t *testing.T) {
	home := t.TempDir()
	addProfile(t, home, "coder", `{"desired_state":"running"}`)
	addProfile(t, home, "writer", "")
	addProfile(t, home, "BadName", "")
	addProfile(t, home, "default", `{"desired_state":"running"}`)
	addProfile(t, home, ".hidden", "")
	writeFile(t, filepath.Join(home, StateFileName), `{"gateway_state":"starting"}`)
	mkdir(t, filepath.Join(home, "profiles", "nosoul"))
	writeFile(t, filepath.Join(home, "profiles", "file"), "")
	hostile.Symlink(t, "coder", filepath.Join(home, "profiles", "link"))
	mkdir(t, filepath.Join(home, "profiles", "fifosoul"))
	hostile.Special(t, hostile.FIFO, filepath.Join(home, "profiles", "fifosoul", "SOUL.md"))

	type result struct {
		p       Profile
		present bool
		err     error
	}
	tests := []struct {
		name        string
		home        string
		key         string
		wantPresent bool
		wantErr     error  // errors.Is target; nil with wantErrText "" means no error
		wantErrText string // substring
		wantDir     string
	}{
		{name: "default is the root", home: home, key: "default", wantPresent: true, wantDir: home},
		{name: "named", home: home, key: "coder", wantPresent: true, wantDir: filepath.Join(home, "profiles", "coder")},
		{name: "gone", home: home, key: "missing"},
		{name: "no SOUL.md", home: home, key: "nosoul", wantPresent: true, wantErr: ErrNotProfile, wantErrText: "has no SOUL.md"},
		{name: "file", home: home, key: "file", wantPresent: true, wantErr: ErrNotProfile, wantErrText: "not a directory"},
		{name: "symlink", home: home, key: "link", wantPresent: true, wantErrText: "is a symlink"},
		{name: "invalid name", home: home, key: "BadName", wantPresent: true, wantErrText: "invalid profile name"},
		{name: "FIFO SOUL.md", home: home, key: "fifosoul", wantPresent: true, wantErrText: "FIFO"},
		{name: "dot name", home: home, key: ".hidden", wantErrText: "no entry under profiles/"},
		{name: "traversal", home: home, key: "../profiles/coder", wantErrText: "no entry under profiles/"},
		{name: "empty", home: home, key: "", wantErrText: "empty"},
		{name: "profiles/ missing: presence unknown", home: t.TempDir(), key: "coder", wantPresent: true, wantErr: ErrUnlisted},
		{name: "HERMES_HOME missing: presence unknown", home: filepath.Join(home, "absent"), key: "coder", wantPresent: true, wantErr: ErrUnlisted},
		{name: "HERMES_HOME missing: no default", home: filepath.Join(home, "absent"), key: "default", wantErrText: "HERMES_HOME cannot be opened"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hostile.WithinValue(t, deadline, func() result {
				p, present, err := Loader{Home: tt.home}.LoadProfile(tt.key)
				return result{p, present, err}
			})
			if r.present != tt.wantPresent {
				t.Errorf("present = %v, want %v", r.present, tt.wantPresent)
			}
			if tt.wantErr == nil && tt.wantErrText == "" {
				if r.err != nil {
					t.Fatalf("err = %v", r.err)
				}
				if tt.wantDir == "" {
					if !cmp.Equal(r.p, Profile{}) {
						t.Errorf("profile for an absent entry: %+v", r.p)
					}
					return
				}
				if r.p.Name != tt.key || r.p.Dir != tt.wantDir {
					t.Errorf("profile %q at %q, want %q at %q", r.p.Name, r.p.Dir, tt.key, tt.wantDir)
				}
				return
			}
			if r.err == nil {
				t.Fatalf("err = nil, want %v %q", tt.wantErr, tt.wantErrText)
			}
			if tt.wantErr != nil && !errors.Is(r.err, tt.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", r.err, tt.wantErr)
			}
			if !strings.Contains(r.err.Error(), tt.wantErrText) {
				t.Errorf("err = %v, want it to contain %q", r.err, tt.wantErrText)
			}
			if !errors.Is(tt.wantErr, ErrNotProfile) && errors.Is(r.err, ErrNotProfile) {
				t.Errorf("err %v must not wrap ErrNotProfile", r.err)
			}
		})
	}

	// LoadProfile and Load agree on every profile Load returns.
	st := load(t, home)
	if len(st.Profiles) != 3 {
		t.Fatalf("Load: %q", names(st.Profiles))
	}
	for _, want := range st.Profiles {
		got, present, err := Loader{Home: home}.LoadProfile(want.Name)
		if err != nil || !present {
			t.Fatalf("LoadProfile(%q) = present %v, err %v", want.Name, present, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("LoadProfile(%q) differs from Load (-Load +LoadProfile):\n%s", want.Name, diff)
		}
	}
	if st.Profiles[0].GatewayState != "starting" || st.Profiles[0].Intent != Hold {
		t.Errorf("root profile read profiles/default instead of HERMES_HOME: %+v", st.Profiles[0])
	}
}

// benchState is a realistic compact gateway write.
const benchState = `{"pid":4242,"kind":"hermes-gateway","argv":["hermes","gateway","run","--replace"],"start_time":1790000000,` +
	`"hermes_home":"/opt/data","gateway_state":"running","exit_reason":null,"restart_requested":false,"active_agents":0,` +
	`"platforms":{"telegram":{"state":"connected","error_code":null,"updated_at":"2026-11-21T23:30:21Z"}},` +
	`"session_store":{"status":"ok"},"updated_at":"2026-11-21T23:30:21Z","code_sha":"0123456789abcdef","desired_state":"running"}`

func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			home := b.TempDir()
			writeFile(b, filepath.Join(home, StateFileName), benchState)
			for i := 0; i < n; i++ {
				addProfile(b, home, fmt.Sprintf("profile-%04d", i), benchState)
			}
			l := Loader{Home: home}
			if got := len(l.Load().Profiles); got != n+1 {
				b.Fatalf("loaded %d profiles, want %d", got, n+1)
			}
			b.ReportAllocs()
			for b.Loop() {
				l.Load()
			}
		})
	}
}

// TestJoinPathAs: a profile's path is the earlier read's string when that is the same path,
// and a fresh join otherwise (never a look-alike).
func TestJoinPathAs(t *testing.T) {
	tests := []struct {
		dir, name, prev string
		reused          bool
	}{
		{"/h/profiles", "coder", "/h/profiles/coder", true},
		{"/", "coder", "/coder", true},
		{"/h/profiles", "coder", "/h/profiles/coders", false},
		{"/h/profiles", "coder", "/h/profileszcoder", false},
		{"/h/profiles", "coder", "/g/profiles/coder", false},
		{"/h/profiles", "coder", "", false},
	}
	for _, tc := range tests {
		prev := &Profile{Dir: strings.Clone(tc.prev)}
		got := joinPathAs(tc.dir, tc.name, prev)
		if want := joinPath(tc.dir, tc.name); got != want {
			t.Errorf("joinPathAs(%q, %q, %q) = %q, want %q", tc.dir, tc.name, tc.prev, got, want)
		}
		if reused := len(got) > 0 && len(prev.Dir) > 0 && unsafe.StringData(got) == unsafe.StringData(prev.Dir); reused != tc.reused {
			t.Errorf("joinPathAs(%q, %q, %q) reused the earlier string: %v, want %v", tc.dir, tc.name, tc.prev, reused, tc.reused)
		}
	}
	if got := joinPathAs("/h/profiles", "coder", nil); got != "/h/profiles/coder" {
		t.Errorf("without an earlier read: %q", got)
	}
}
