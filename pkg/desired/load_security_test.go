package desired

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
)

// Helpers of the security and race tests carry a "sec" prefix so they never collide with the
// helpers of the other test files of the package.

// secLoad runs Load and fails the test if it does not return within 30 s (blocked on a special
// file?).
func secLoad(t *testing.T, home string) State {
	t.Helper()
	return hostile.WithinValue(t, 30*time.Second, Loader{Home: home}.Load)
}

func secNames(st State) []string {
	var out []string
	for _, p := range st.Profiles {
		out = append(out, p.Name)
	}
	return out
}

// secOpenFDs counts this process's open descriptors.
func secOpenFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// hostileNames are directory names an attacker with write access to profiles/ can create.
// None is a valid profile name, so none may become a Profile, a path or a script.
var hostileNames = []string{
	"a\nb", "x;rm -rf ~", "$(touch pwned)", "`id`", "a..b", "a b", "a'b", `a"b`, "a\\b", "\xff\xfe",
	"héllo", "UPPER", "-rf", "_lead", "a\tb", "a\rb", "\x1b[31m", "a=b", "*", "a|b", "a&b", "a>b",
	"{a,b}", "~root", "a\x7f", strings.Repeat("a", MaxNameLen+1), strings.Repeat("b", 255),
}

// TestLoadSecurityHostileNames: entries with hostile names (each with a SOUL.md, so they would
// be profiles but for the name) never become a Profile; each is reported once, on one line.
func TestLoadSecurityHostileNames(t *testing.T) {
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ProfilesDirName, "good", SoulFileName), "# good\n")
	for _, n := range hostileNames {
		writeFile(t, filepath.Join(home, ProfilesDirName, n, SoulFileName), "# evil\n")
	}
	st := secLoad(t, home)
	if got := secNames(st); strings.Join(got, ",") != "default,good" {
		t.Fatalf("profiles = %q, want default and good only", got)
	}
	reported := map[string]int{}
	for _, p := range st.Problems {
		reported[p.Name]++
		if strings.ContainsAny(p.Err.Error(), "\r\n") {
			t.Errorf("problem for %q is not one line: %q", p.Name, p.Err)
		}
	}
	for _, n := range hostileNames {
		if reported[n] != 1 {
			t.Errorf("%q reported %d times, want once", n, reported[n])
		}
		if _, present, err := (Loader{Home: home}).LoadProfile(n); err == nil || !present {
			t.Errorf("LoadProfile(%q) = present %v, err %v; want present and an error", n, present, err)
		}
	}
	// 300 bytes cannot even be a file name (NAME_MAX is 255), and is invalid anyway.
	long := strings.Repeat("c", 300)
	if err := os.Mkdir(filepath.Join(home, ProfilesDirName, long), 0o755); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("mkdir of a 300-byte name: %v, want ENAMETOOLONG", err)
	}
	if ValidateName(long) == nil {
		t.Error("ValidateName accepted 300 bytes")
	}
	// Names that could walk out of profiles/ are refused before any path is built.
	for _, n := range []string{"..", ".", "../profiles/good", "good/../../etc", "/etc", "a\x00b"} {
		if p, _, err := (Loader{Home: home}).LoadProfile(n); err == nil {
			t.Errorf("LoadProfile(%q) = %+v, want an error", n, p)
		}
	}
}

// TestLoadSecuritySpecialFiles: a device, socket or FIFO as gateway_state.json or SOUL.md is
// refused without being opened (inotify sees no open), and Load does not block.
func TestLoadSecuritySpecialFiles(t *testing.T) {
	for _, kind := range []hostile.Kind{hostile.Device, hostile.Socket, hostile.FIFO} {
		for _, file := range []string{StateFileName, SoulFileName} {
			t.Run(string(kind)+" as "+file, func(t *testing.T) {
				home := hostile.ShortTempDir(t)
				dir := filepath.Join(home, ProfilesDirName, "p")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if file == StateFileName {
					writeFile(t, filepath.Join(dir, SoulFileName), "# p\n")
				}
				special := filepath.Join(dir, file)
				hostile.Special(t, kind, special)
				w := hostile.WatchOpens(t, special)
				st := secLoad(t, home)
				if n := w.Events(); n != 0 {
					t.Errorf("the %s was opened %d times", kind, n)
				}
				switch file {
				case StateFileName:
					if len(st.Profiles) != 2 || st.Profiles[1].HasStateFile || !strings.Contains(st.Profiles[1].Warning, "not a regular file") {
						t.Errorf("profiles = %+v, want p without a state file and with a warning", st.Profiles)
					}
					if p := st.Profiles[len(st.Profiles)-1]; p.BootIntent != Down || p.Intent != Hold {
						t.Errorf("intents %v/%v, want down/hold", p.BootIntent, p.Intent)
					}
				case SoulFileName:
					if got := secNames(st); len(got) != 1 {
						t.Errorf("profiles = %q, want only default", got)
					}
				}
			})
		}
	}
	t.Run("device as the root's state file", func(t *testing.T) {
		home := hostile.ShortTempDir(t)
		special := filepath.Join(home, StateFileName)
		hostile.Special(t, hostile.Device, special)
		w := hostile.WatchOpens(t, special)
		st := secLoad(t, home)
		if n := w.Events(); n != 0 {
			t.Errorf("the device was opened %d times", n)
		}
		if st.Profiles[0].HasStateFile || st.Profiles[0].Warning == "" {
			t.Errorf("root profile = %+v, want no state file and a warning", st.Profiles[0])
		}
	})
}

// TestLoadSecurityManyEntries: 30,000 profiles are all found, with no descriptor left open and
// memory proportional to the entries (a few KiB each).
func TestLoadSecurityManyEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 30,000 profile directories")
	}
	const n = 30000
	home := t.TempDir()
	profiles := filepath.Join(home, ProfilesDirName)
	if err := os.Mkdir(profiles, 0o755); err != nil {
		t.Fatal(err)
	}
	pd, err := os.Open(profiles)
	if err != nil {
		t.Fatal(err)
	}
	defer pd.Close()
	pfd := int(pd.Fd())
	for i := range n {
		name := fmt.Sprintf("p%05d", i)
		if err := unix.Mkdirat(pfd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Openat(pfd, name+"/"+SoulFileName, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	fds := secOpenFDs(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	st := secLoad(t, home)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if len(st.Profiles) != n+1 || len(st.Problems) != 0 || !st.Listed {
		t.Fatalf("Load found %d profiles, %d problems, listed %v; want %d, 0, true", len(st.Profiles), len(st.Problems), st.Listed, n+1)
	}
	for i, p := range st.Profiles[1:] {
		if want := fmt.Sprintf("p%05d", i); p.Name != want {
			t.Fatalf("profile %d is %q, want %q", i+1, p.Name, want)
		}
	}
	if got := secOpenFDs(t); got != fds {
		t.Errorf("%d descriptors open after Load, %d before", got, fds)
	}
	perEntry := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("Load of %d profiles: %v, %d bytes allocated per entry", n, elapsed, perEntry)
	if perEntry > 16<<10 {
		t.Errorf("Load allocated %d bytes per entry, want at most 16 KiB", perEntry)
	}
}

// TestLoadSecurityDeepTree: a profile holding a 500-level deep tree (and one in HERMES_HOME
// itself) is loaded without the loader ever opening anything below the profile directory, and
// without keeping descriptors open.
func TestLoadSecurityDeepTree(t *testing.T) {
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ProfilesDirName, "deep", SoulFileName), "# deep\n")
	var firsts []string
	for _, base := range []string{filepath.Join(home, ProfilesDirName, "deep"), home} {
		d, err := os.Open(base)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(d.Fd()))
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Build a/a/a/... one level at a time from descriptors (the full path would pass PATH_MAX
		// only far deeper, but this is how an attacker would do it too).
		for level := range 500 {
			if err := unix.Mkdirat(fd, "a", 0o755); err != nil {
				t.Fatal(err)
			}
			next, err := unix.Openat(fd, "a", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				t.Fatalf("level %d: %v", level, err)
			}
			fd = next
		}
		unix.Close(fd)
		firsts = append(firsts, filepath.Join(base, "a"))
	}
	var watches []*hostile.Watch
	for _, p := range append(firsts, filepath.Join(firsts[0], "a"), filepath.Join(firsts[1], "a")) {
		watches = append(watches, hostile.WatchOpens(t, p))
	}
	fds := secOpenFDs(t)
	st := secLoad(t, home)
	if got := secNames(st); strings.Join(got, ",") != "default,deep" {
		t.Fatalf("profiles = %q", got)
	}
	for i, w := range watches {
		if n := w.Events(); n != 0 {
			t.Errorf("watch %d: the deep tree was opened %d times", i, n)
		}
	}
	if got := secOpenFDs(t); got != fds {
		t.Errorf("%d descriptors open after Load, %d before", got, fds)
	}
}

// TestLoadSecurityProfilesSymlink: a profiles/ that is a symlink (to a real profiles tree
// elsewhere, or dangling) is not followed: only the root profile is served, nothing is listed
// (so nothing may be unregistered), and nothing behind the link is opened.
func TestLoadSecurityProfilesSymlink(t *testing.T) {
	home, elsewhere := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(elsewhere, "victim", SoulFileName), "# victim\n")
	writeFile(t, filepath.Join(elsewhere, "victim", StateFileName), `{"desired_state":"running"}`)
	hostile.Symlink(t, elsewhere, filepath.Join(home, ProfilesDirName))
	w := hostile.WatchOpens(t, elsewhere)
	st := secLoad(t, home)
	if got := secNames(st); strings.Join(got, ",") != "default" || st.Listed {
		t.Fatalf("profiles = %q, listed %v; want only default, not listed", got, st.Listed)
	}
	if n := w.Events(); n != 0 {
		t.Errorf("the symlink's target was opened %d times", n)
	}
	if _, present, err := (Loader{Home: home}).LoadProfile("victim"); err == nil || !present {
		t.Errorf("LoadProfile through a symlinked profiles/: present %v, err %v; want present (unknown) and an error", present, err)
	}
}
