package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/internal/hostile"
)

func TestFormatBootLine(t *testing.T) {
	utc := time.Date(2026, 11, 21, 23, 30, 21, 999, time.UTC)
	tests := []struct {
		name                   string
		t                      time.Time
		profile, prior, action string
		folded                 bool
		want                   string
	}{
		{name: "started", t: utc, profile: "coder", prior: "running", action: "started",
			want: "2026-11-21T23:30:21+0000 profile=coder prior_state=running action=started prior_exit=unknown folded_into_root=False"},
		{name: "registered, no prior state", t: utc, profile: "default", prior: "None", action: "registered",
			want: "2026-11-21T23:30:21+0000 profile=default prior_state=None action=registered prior_exit=unknown folded_into_root=False"},
		{name: "skipped", t: utc, profile: "my-profile", prior: "startup_failed", action: "skipped",
			want: "2026-11-21T23:30:21+0000 profile=my-profile prior_state=startup_failed action=skipped prior_exit=unknown folded_into_root=False"},
		{name: "positive offset", t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("IST", 5*3600+1800)), profile: "a", prior: "stopped", action: "registered",
			want: "2026-01-02T03:04:05+0530 profile=a prior_state=stopped action=registered prior_exit=unknown folded_into_root=False"},
		{name: "negative offset", t: time.Date(2026, 7, 1, 0, 0, 0, 0, time.FixedZone("", -7*3600)), profile: "a", prior: "None", action: "registered",
			want: "2026-07-01T00:00:00-0700 profile=a prior_state=None action=registered prior_exit=unknown folded_into_root=False"},
		{name: "already quoted prior state kept", t: utc, profile: "a", prior: `"a b"`, action: "registered",
			want: `2026-11-21T23:30:21+0000 profile=a prior_state="\"a b\"" action=registered prior_exit=unknown folded_into_root=False`},
		{name: "line break quoted", t: utc, profile: "a", prior: "x\ny", action: "registered",
			want: `2026-11-21T23:30:21+0000 profile=a prior_state="x\ny" action=registered prior_exit=unknown folded_into_root=False`},
		{name: "extra field cannot be injected", t: utc, profile: "a action=started", prior: "None", action: "registered",
			want: `2026-11-21T23:30:21+0000 profile="a action=started" prior_state=None action=registered prior_exit=unknown folded_into_root=False`},
		{name: "folded into the root", t: utc, profile: "alpha", prior: "running", action: "registered", folded: true,
			want: "2026-11-21T23:30:21+0000 profile=alpha prior_state=running action=registered prior_exit=unknown folded_into_root=True"},
		{name: "empty value", t: utc, profile: "a", prior: "", action: "registered",
			want: `2026-11-21T23:30:21+0000 profile=a prior_state="" action=registered prior_exit=unknown folded_into_root=False`},
	}
	for _, exit := range []string{"clean", "unclean"} {
		want := "2026-11-21T23:30:21+0000 profile=coder prior_state=running action=started prior_exit=" + exit + " folded_into_root=False"
		if got := FormatBootLine(utc, "coder", "running", "started", exit, false); got != want {
			t.Errorf("FormatBootLine(%s) = %s, want %s", exit, got, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatBootLine(tt.t, tt.profile, tt.prior, tt.action, "", tt.folded); got != tt.want {
				t.Errorf("FormatBootLine() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// within runs fn and fails the test if it does not return within 10 s (a FIFO would block).
func within(t *testing.T, fn func() error) error {
	t.Helper()
	return hostile.WithinValue(t, 10*time.Second, fn)
}

func TestAppendBootLog(t *testing.T) {
	lines := []string{"line a", "line b"}
	const newLines = "line a\nline b\n"
	tests := []struct {
		name    string
		setup   func(t *testing.T, home string)
		lines   []string
		wantLog string // exact content of container-boot.log afterwards; "-" means it must not exist
		wantOld string // exact content of container-boot.log.1; "-" means it must not exist
		wantErr string
	}{
		{name: "creates logs/ and the log", setup: func(*testing.T, string) {}, lines: lines, wantLog: newLines, wantOld: "-"},
		{name: "appends below the threshold",
			setup: func(t *testing.T, home string) { writeFile(t, filepath.Join(home, "logs", BootLogName), "old\n") },
			lines: lines, wantLog: "old\n" + newLines, wantOld: "-"},
		{name: "appends one byte below the threshold",
			setup: func(t *testing.T, home string) {
				writeFile(t, filepath.Join(home, "logs", BootLogName), strings.Repeat("x", BootLogRotateSize-1))
			},
			lines: lines, wantLog: strings.Repeat("x", BootLogRotateSize-1) + newLines, wantOld: "-"},
		{name: "rotates at the threshold",
			setup: func(t *testing.T, home string) {
				writeFile(t, filepath.Join(home, "logs", BootLogName), strings.Repeat("x", BootLogRotateSize))
			},
			lines: lines, wantLog: newLines, wantOld: strings.Repeat("x", BootLogRotateSize)},
		{name: "rotation replaces an older .1",
			setup: func(t *testing.T, home string) {
				writeFile(t, filepath.Join(home, "logs", BootLogName), strings.Repeat("y", BootLogRotateSize+10))
				writeFile(t, filepath.Join(home, "logs", RotatedBootLogName), "ancient\n")
			},
			lines: lines, wantLog: newLines, wantOld: strings.Repeat("y", BootLogRotateSize+10)},
		{name: "no lines writes nothing", setup: func(*testing.T, string) {}, wantLog: "-", wantOld: "-"},
		{name: "a line break in a line is refused",
			setup: func(*testing.T, string) {}, lines: []string{"ok", "bad\nprofile=x"}, wantLog: "-", wantOld: "-",
			wantErr: "line 1 holds a line break"},
		{name: "log is a FIFO",
			setup: func(t *testing.T, home string) {
				if err := os.MkdirAll(filepath.Join(home, "logs"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(filepath.Join(home, "logs", BootLogName), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			lines: lines, wantOld: "-", wantErr: BootLogName},
		{name: "log is a directory",
			setup: func(t *testing.T, home string) {
				if err := os.MkdirAll(filepath.Join(home, "logs", BootLogName), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			lines: lines, wantOld: "-", wantErr: BootLogName},
		{name: "logs is a file",
			setup: func(t *testing.T, home string) { writeFile(t, filepath.Join(home, "logs"), "x") },
			lines: lines, wantErr: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			tt.setup(t, home)
			err := within(t, func() error { return AppendBootLog(home, tt.lines) })
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("AppendBootLog: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("AppendBootLog = %v, want an error containing %q", err, tt.wantErr)
			}
			logPath := filepath.Join(home, "logs", BootLogName)
			oldPath := filepath.Join(home, "logs", RotatedBootLogName)
			if tt.wantLog == "-" && exists(logPath) {
				t.Errorf("%s exists", logPath)
			}
			if tt.wantLog != "-" && tt.wantLog != "" {
				if diff := cmp.Diff(tt.wantLog, readFile(t, logPath)); diff != "" {
					t.Errorf("log (-want +got):\n%.2000s", diff)
				}
			}
			if tt.wantOld == "-" && exists(oldPath) {
				t.Errorf("%s exists", oldPath)
			}
			if tt.wantOld != "-" && tt.wantOld != "" {
				if got := readFile(t, oldPath); got != tt.wantOld {
					t.Errorf("rotated log has %d bytes starting %.20q, want %d bytes starting %.20q", len(got), got, len(tt.wantOld), tt.wantOld)
				}
			}
			if tt.wantLog == "-" && len(tt.lines) == 0 && exists(filepath.Join(home, "logs")) {
				t.Errorf("logs/ was created with nothing to write")
			}
		})
	}
}

func TestAppendBootLogModes(t *testing.T) {
	home := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	if err := AppendBootLog(home, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(home, "logs"):              os.ModeDir | 0o755,
		filepath.Join(home, "logs", BootLogName): 0o644,
	} {
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
		}
	}
	// A second call appends to the same file.
	if err := AppendBootLog(home, []string{"y"}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(home, "logs", BootLogName)); got != "x\ny\n" {
		t.Errorf("log = %q", got)
	}
}

func TestAppendBootLogRefusesSymlinks(t *testing.T) {
	t.Run("logs/ is a symlink", func(t *testing.T) {
		home, elsewhere := t.TempDir(), t.TempDir()
		if err := os.Symlink(elsewhere, filepath.Join(home, "logs")); err != nil {
			t.Fatal(err)
		}
		err := AppendBootLog(home, []string{"x"})
		if err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Fatalf("AppendBootLog = %v, want a symlink error", err)
		}
		if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
			t.Errorf("wrote through the symlink: %v", entries)
		}
	})
	t.Run("logs/ is a dangling symlink", func(t *testing.T) {
		home := t.TempDir()
		target := filepath.Join(t.TempDir(), "not-yet")
		if err := os.Symlink(target, filepath.Join(home, "logs")); err != nil {
			t.Fatal(err)
		}
		if err := AppendBootLog(home, []string{"x"}); err == nil {
			t.Fatal("AppendBootLog succeeded through a dangling symlink")
		}
		if exists(target) {
			t.Errorf("created %s through the symlink", target)
		}
	})
	for _, size := range []int{10, BootLogRotateSize} {
		t.Run(fmt.Sprintf("log of %d bytes is a symlink", size), func(t *testing.T) {
			home := t.TempDir()
			target := filepath.Join(t.TempDir(), "victim")
			content := strings.Repeat("v", size)
			writeFile(t, target, content)
			writeFile(t, filepath.Join(home, "logs", "keep"), "")
			link := filepath.Join(home, "logs", BootLogName)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			err := AppendBootLog(home, []string{"x"})
			if err == nil || !strings.Contains(err.Error(), "symlink") {
				t.Fatalf("AppendBootLog = %v, want a symlink error", err)
			}
			if got := readFile(t, target); got != content {
				t.Errorf("symlink target changed: %d bytes", len(got))
			}
			if dst, err := os.Readlink(link); err != nil || dst != target {
				t.Errorf("symlink changed: %q, %v", dst, err)
			}
			if exists(filepath.Join(home, "logs", RotatedBootLogName)) {
				t.Errorf("rotated through a symlink")
			}
		})
	}
	t.Run("log is a dangling symlink", func(t *testing.T) {
		home := t.TempDir()
		target := filepath.Join(t.TempDir(), "not-yet")
		writeFile(t, filepath.Join(home, "logs", "keep"), "")
		if err := os.Symlink(target, filepath.Join(home, "logs", BootLogName)); err != nil {
			t.Fatal(err)
		}
		if err := AppendBootLog(home, []string{"x"}); err == nil {
			t.Fatal("AppendBootLog succeeded through a dangling symlink")
		}
		if exists(target) {
			t.Errorf("created %s through the symlink", target)
		}
	})
}
