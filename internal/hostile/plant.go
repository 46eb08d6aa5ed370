package hostile

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Kind is a kind of special file Special can plant.
type Kind string

// The special files an attacker can plant. Device needs root (and CAP_MKNOD).
const (
	Device Kind = "device" // a character device like /dev/null (1,3)
	FIFO   Kind = "fifo"   // a named pipe without a writer: opening it for reading blocks
	Socket Kind = "socket" // a listening unix socket
)

// Special plants a special file of the given kind at path. A Device needs root: without it the
// test is skipped (t.Skip); as root, a refused mknod fails the test. A Socket is closed when the
// test ends; its path must be short (unix socket paths are limited to 108 bytes): see
// ShortTempDir.
func Special(t testing.TB, kind Kind, path string) {
	t.Helper()
	switch kind {
	case Device:
		if os.Geteuid() != 0 {
			t.Skip("mknod needs root")
		}
		if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatalf("mknod as root: %v", err)
		}
	case FIFO:
		if err := unix.Mkfifo(path, 0o666); err != nil {
			t.Fatal(err)
		}
	case Socket:
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	default:
		t.Fatalf("unknown kind of special file %q", kind)
	}
}

// DeviceOrFIFO plants the most dangerous special file the test can make at path, and returns
// which: a character device as root (see Special), a FIFO otherwise.
func DeviceOrFIFO(t testing.TB, path string) Kind {
	t.Helper()
	kind := FIFO
	if os.Geteuid() == 0 {
		kind = Device
	}
	Special(t, kind, path)
	return kind
}

// WriteFile writes data to path with exactly mode (chmod after the write, so the umask does not
// interfere), creating the missing parent directories (0755).
func WriteFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// Symlink makes link a symbolic link to target (which need not exist).
func Symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// Link makes newname a hard link to oldname.
func Link(t testing.TB, oldname, newname string) {
	t.Helper()
	if err := os.Link(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

// RootOwned makes path owned by root (when the test runs as root) and mode 0600, like a system
// file the attacker would like the controller to read or write for it.
func RootOwned(t testing.TB, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// ShortTempDir is a temporary directory with a short path, removed when the test ends: a unix
// socket path is limited to 108 bytes, which t.TempDir's long paths can exceed.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "h")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}
