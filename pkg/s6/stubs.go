package s6

// TODO(helper): implementations live in reader.go, client.go and slot.go; this file holds the
// agreed signatures until then and is deleted when they land.

import (
	"context"
	"os"
	"time"
)

// File is one file of a slot directory: Name is relative to the slot ("run", "log/run").
type File struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// Owner is the uid/gid that owns the supervise skeleton of a slot (gatewayUser).
type Owner struct{ UID, GID int }

// ReadSupervision reads <serviceDir>/supervise/lock and supervise/status without following
// symlinks, without blocking, with capped reads.
func ReadSupervision(serviceDir string) (Supervision, error) { panic("TODO") }

// Client runs s6 binaries from BinDir by absolute path, each bounded by Timeout.
type Client struct {
	BinDir  string
	Timeout time.Duration
}

// Up runs s6-svc -u on dir.
func (c *Client) Up(ctx context.Context, dir string) error { panic("TODO") }

// Down runs s6-svc -d on dir.
func (c *Client) Down(ctx context.Context, dir string) error { panic("TODO") }

// DownWait runs s6-svc -d on dir and waits (bounded by wait) until it is down and finished.
func (c *Client) DownWait(ctx context.Context, dir string, wait time.Duration) error { panic("TODO") }

// Rescan runs s6-svscanctl -a on scandir.
func (c *Client) Rescan(ctx context.Context, scandir string) error { panic("TODO") }

// RescanPrune runs s6-svscanctl -an on scandir.
func (c *Client) RescanPrune(ctx context.Context, scandir string) error { panic("TODO") }

// CreateSlot builds <scandir>/.<slot>.tmp with files (and ./down when down is true, and the
// supervise skeleton owned by owner when owner is non-nil), then renames it to <scandir>/<slot>.
func CreateSlot(scandir, slot string, files []File, down bool, owner *Owner) error { panic("TODO") }

// WriteFile atomically replaces one file of a slot (temp in the same dir, then rename).
func WriteFile(slotDir string, f File) error { panic("TODO") }

// SetDown creates or removes <slotDir>/down.
func SetDown(slotDir string, down bool) error { panic("TODO") }

// RemoveSlot removes <scandir>/<slot> recursively without following symlinks.
func RemoveSlot(scandir, slot string) error { panic("TODO") }

// RemoveStaging removes the staging entry <scandir>/<name> (a ".gateway-*.tmp") without following symlinks.
func RemoveStaging(scandir, name string) error { panic("TODO") }

// WaitSupervised polls until a supervisor holds <dir>/supervise/lock, or timeout.
func WaitSupervised(ctx context.Context, dir string, timeout time.Duration) error { panic("TODO") }
