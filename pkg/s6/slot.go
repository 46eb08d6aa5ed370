package s6

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// SlotPrefix starts the name of every slot the controller manages in the scandir.
const SlotPrefix = "gateway-"

// Default modes of what CreateSlot and SetDown make.
const (
	dirMode  = 0o755
	downMode = 0o644
)

// Modes of the supervise skeleton (the s6-svperms model: root owns everything, the gateway
// user's group gets exactly the access s6-svc, s6-svstat and s6-svwait need).
const (
	// fifodirMode is event/: setgid + sticky + group-writable, as s6 makes its fifodirs. A group
	// member can add (and remove its own) subscription FIFOs, nothing else.
	fifodirMode = 0o3730
	// superviseMode is supervise/: the group may traverse it (open control, read status and
	// lock), but not list it and, above all, not create entries in it.
	superviseMode = 0o710
	// controlMode is supervise/control: the group may write commands, not read them.
	controlMode = 0o620
)

// File is one file of a slot directory: Name is relative to the slot ("run", "log/run").
//
// Name must be a clean relative path without "." or ".." components, and none of its directory
// components may be "supervise" or "event" (those belong to s6). Mode is applied with an
// explicit chmod (or by open itself where that is exact, see modes), so the umask does not matter; only permission, setuid, setgid and sticky bits
// are used, and a zero Mode means 0644.
type File struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// Owner is the gateway user (gatewayUser) that may drive a slot's supervisor without root.
//
// Only GID is used for ownership: the skeleton is owned by the controller's own uid (root in
// the container) with group GID, so that the user's group can run s6-svc, s6-svstat and
// s6-svwait but cannot create, replace or link anything in supervise/, which root's
// s6-supervise writes into. UID is carried for messages and callers; it owns nothing.
type Owner struct{ UID, GID int }

// StagingName returns the name of slot's staging entry in the scandir: ".<slot>.tmp".
// s6-svscan ignores dot-names, so a half-built slot is never picked up.
func StagingName(slot string) string { return "." + slot + ".tmp" }

// IsStagingName reports whether name has the shape of a staging entry, ".gateway-<x>.tmp" with a
// non-empty <x> and no "/".
func IsStagingName(name string) bool {
	return strings.HasPrefix(name, "."+SlotPrefix) && strings.HasSuffix(name, ".tmp") &&
		len(name) > len("."+SlotPrefix)+len(".tmp") && !strings.ContainsAny(name, "/\x00")
}

func checkSlotName(slot string) error {
	if !strings.HasPrefix(slot, SlotPrefix) || len(slot) == len(SlotPrefix) || strings.ContainsAny(slot, "/\x00") {
		return fmt.Errorf("slot name %q: must be %s<name> without \"/\" (nothing else in the scandir is touched)", slot, SlotPrefix)
	}
	return nil
}

// splitFileName checks a File.Name and splits it into directory components and a base name.
func splitFileName(name string) (dirs []string, base string, err error) {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || strings.ContainsRune(name, 0) {
		return nil, "", fmt.Errorf("file name %q: must be a clean relative path", name)
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if p == "." || p == ".." {
			return nil, "", fmt.Errorf("file name %q: must be a clean relative path", name)
		}
		if i < len(parts)-1 && (p == "supervise" || p == "event") {
			return nil, "", fmt.Errorf("file name %q: %s/ belongs to s6", name, p)
		}
	}
	return parts[:len(parts)-1], parts[len(parts)-1], nil
}

func fileMode(m os.FileMode) os.FileMode {
	m &= os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky
	if m == 0 {
		return 0o644
	}
	return m
}

func pathErr(op, p string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		err = safefs.ErrSymlink
	}
	return &os.PathError{Op: op, Path: p, Err: err}
}

// modes tells when open and mkdir alone give a new entry its exact mode, so the chmod after
// them can go: nil (never) unless learnt for the directory the entries are made in (newModes).
type modes struct{ umask uint32 }

// newModes learns d's modes: the process's umask (/proc/self/status), and that d has no
// default ACL (which would replace the umask) and no setgid bit (which new directories would
// inherit). nil when any of it is unknown.
func newModes(d *safefs.Dir) *modes {
	var st unix.Stat_t
	if unix.Fstat(d.FD(), &st) != nil || st.Mode&unix.S_ISGID != 0 {
		return nil
	}
	if _, err := unix.Fgetxattr(d.FD(), "system.posix_acl_default", nil); !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return &modes{umask: uint32(u)}
			}
		}
	}
	return nil
}

// exact reports whether creating with perm gives exactly perm (no special bits, none masked).
func (m *modes) exact(perm uint32) bool {
	return m != nil && perm&^0o777 == 0 && perm&m.umask == 0
}

// mkdirIn creates the directory name in d and opens it without following a symlink. With
// mustCreate an existing entry is an error; otherwise an existing directory is reused (a symlink
// or non-directory is refused). A new directory gets mode perm by an explicit chmod, after a
// chown to owner when owner is non-nil (chown clears setgid, so it goes first), or from mkdir
// itself when m says that is exact and there is no owner.
func mkdirIn(d *safefs.Dir, name string, perm uint32, owner *Owner, mustCreate bool, m *modes) (*safefs.Dir, error) {
	direct := owner == nil && m.exact(perm)
	mode := uint32(0o700)
	if direct {
		mode = perm
	}
	err := unix.Mkdirat(d.FD(), name, mode)
	created := err == nil
	if err != nil && (mustCreate || !errors.Is(err, unix.EEXIST)) {
		return nil, pathErr("mkdir", d.Path()+"/"+name, err)
	}
	sub, err := d.OpenDir(name)
	if err != nil {
		return nil, err
	}
	if created && !direct {
		if err := chownChmod(sub.FD(), sub.Path(), perm, owner); err != nil {
			sub.Close()
			return nil, err
		}
	}
	return sub, nil
}

func chownChmod(fd int, p string, perm uint32, owner *Owner) error {
	if owner != nil {
		if err := unix.Fchown(fd, owner.UID, owner.GID); err != nil {
			return pathErr("chown", p, err)
		}
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return pathErr("chmod", p, err)
	}
	return nil
}

// createFile writes a new file name in d (O_EXCL|O_NOFOLLOW), sets its mode (by open itself
// when m says that is exact) and, off tmpfs, fsyncs it. Raw syscalls: a regular file gains
// nothing from Go's poller.
func createFile(d *safefs.Dir, name string, data []byte, mode os.FileMode, m *modes) error {
	p := d.Path() + "/" + name
	perm := uint32(mode.Perm())
	direct := m.exact(perm)
	open := uint32(0o600)
	if direct {
		open = perm
	}
	fd, err := unix.Openat(d.FD(), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, open)
	if err != nil {
		return pathErr("create", p, err)
	}
	defer unix.Close(fd)
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathErr("write", p, err)
		}
		b = b[n:]
	}
	if !direct {
		if err := unix.Fchmod(fd, perm); err != nil {
			return pathErr("chmod", p, err)
		}
	}
	if durable(d) {
		if err := unix.Fsync(fd); err != nil {
			return pathErr("fsync", p, err)
		}
	}
	return nil
}

// syncDir fsyncs d, off tmpfs.
func syncDir(d *safefs.Dir) error {
	if !durable(d) {
		return nil
	}
	if err := unix.Fsync(d.FD()); err != nil {
		return pathErr("fsync", d.Path(), err)
	}
	return nil
}

// durable reports whether d is on a file system that outlives the machine's power: fsync is
// pointless on tmpfs (the scandir of s6-overlay and of most hosts), where it only costs a
// syscall per file. The answer is asked once (statfs) and remembered for d's parent directory,
// so every later staging dir, slot and log dir below it costs no syscall for it.
func durable(d *safefs.Dir) bool {
	for p := d.Path(); p != "/" && p != "." && p != ""; p = filepath.Dir(p) {
		if v, ok := tmpfsBelow.Load(p); ok {
			return !v.(bool)
		}
	}
	var fs unix.Statfs_t
	tmp := unix.Fstatfs(d.FD(), &fs) == nil && fs.Type == unix.TMPFS_MAGIC
	tmpfsBelow.Store(filepath.Dir(d.Path()), tmp)
	return !tmp
}

// tmpfsBelow maps a directory to whether what is below it is on a tmpfs.
var tmpfsBelow sync.Map

// removeEntry removes name in d without following a symlink: a symlink or other non-directory is
// unlinked, a directory is removed recursively (os.RemoveAll never follows symlinks either). A
// missing entry is not an error.
func removeEntry(d *safefs.Dir, name string) error {
	st, err := d.Lstat(name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	p := d.Path() + "/" + name
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(d.FD(), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return pathErr("unlink", p, err)
		}
		return nil
	}
	return removeAllRetry(p)
}

// CreateSlot builds <scandir>/.<slot>.tmp with files (and ./down when down is true, and the
// supervise skeleton for owner's group when owner is non-nil), then renames it to <scandir>/<slot>.
//
// slot must be "gateway-<name>". A leftover staging entry is removed first without following a
// symlink (a planted symlink is unlinked, its target untouched; a planted directory is removed
// without following the links in it). Files are created with O_EXCL|O_NOFOLLOW, given exactly
// their Mode and fsynced (off tmpfs); directories they need (log/) are made 0755, owned by the caller. The
// skeleton, built in the staging directory before it is published, is the s6-svperms model
// (see makeSkeleton): event/ root:<gid> 03730, supervise/ root:<gid> 0710 and the FIFO
// supervise/control root:<gid> 0620, each chowned before its chmod, and the same under log/
// when the slot has one. The rename never replaces anything: when <scandir>/<slot> exists the
// result is an error wrapping fs.ErrExist. On any error the staging entry is removed and the
// scandir holds no new slot. The caller still has to run Client.Rescan for s6-svscan to see it.
func CreateSlot(scandir, slot string, files []File, down bool, owner *Owner) error {
	if err := checkSlotName(slot); err != nil {
		return err
	}
	c, err := OpenCreator(scandir)
	if err != nil {
		return fmt.Errorf("create slot %s: %w", slot, err)
	}
	defer c.Close()
	return c.CreateSlot(slot, files, down, owner)
}

// Creator creates slots in one scandir, opened once, with what each create would otherwise
// learn again (whether open and mkdir give exact modes: see modes) learnt once. The umask is
// read when it is opened: the process must not change it while the Creator is in use. Safe
// for concurrent use on distinct slots.
type Creator struct {
	sd    *safefs.Dir
	modes *modes
}

// OpenCreator opens scandir for CreateSlot calls. Close it when done.
func OpenCreator(scandir string) (*Creator, error) {
	sd, err := safefs.OpenDir(scandir)
	if err != nil {
		return nil, err
	}
	return &Creator{sd: sd, modes: newModes(sd)}, nil
}

// Close closes the scandir (a directory only read through: nothing to lose).
func (c *Creator) Close() { c.sd.Close() }

// CreateSlot is the package's CreateSlot in c's scandir.
func (c *Creator) CreateSlot(slot string, files []File, down bool, owner *Owner) (err error) {
	if err := checkSlotName(slot); err != nil {
		return err
	}
	staging := StagingName(slot)
	sd := c.sd
	target := sd.Path() + "/" + slot
	// An existing slot is refused by the rename (RENAME_NOREPLACE), a leftover staging entry
	// by the mkdir, which is then retried once it is removed: no lstat of either first.
	stDir, err := mkdirIn(sd, staging, dirMode, nil, true, c.modes)
	if errors.Is(err, fs.ErrExist) {
		if err := removeEntry(sd, staging); err != nil {
			return fmt.Errorf("create slot %s: remove leftover staging: %w", target, err)
		}
		stDir, err = mkdirIn(sd, staging, dirMode, nil, true, c.modes)
	}
	if err != nil {
		return fmt.Errorf("create slot %s: %w", target, err)
	}
	published := false
	defer func() {
		if !published {
			if rerr := removeEntry(sd, staging); rerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %w)", err, rerr)
			}
		}
	}()
	err = fillStaging(stDir, files, down, owner, c.modes)
	if cerr := stDir.Close(); err == nil && cerr != nil {
		err = pathErr("close", stDir.Path(), cerr)
	}
	if err != nil {
		return fmt.Errorf("create slot %s: %w", target, err)
	}
	if err := renameNoReplace(sd, staging, slot); err != nil {
		return fmt.Errorf("create slot %s: %w", target, err)
	}
	published = true
	if err := syncDir(sd); err != nil {
		return fmt.Errorf("create slot %s: %w", target, err)
	}
	return nil
}

// fillStaging writes everything a new slot holds into the fresh staging directory st.
func fillStaging(st *safefs.Dir, files []File, down bool, owner *Owner, m *modes) error {
	subdirs := map[string]*safefs.Dir{}
	defer func() {
		for _, d := range subdirs {
			d.Close()
		}
	}()
	// dirFor opens (creating when needed) the directory holding a file, one component at a time.
	dirFor := func(dirs []string) (*safefs.Dir, error) {
		d := st
		for i := range dirs {
			key := strings.Join(dirs[:i+1], "/")
			if sub, ok := subdirs[key]; ok {
				d = sub
				continue
			}
			sub, err := mkdirIn(d, dirs[i], dirMode, nil, false, m)
			if err != nil {
				return nil, err
			}
			subdirs[key] = sub
			d = sub
		}
		return d, nil
	}
	for _, f := range files {
		dirs, base, err := splitFileName(f.Name)
		if err != nil {
			return err
		}
		d, err := dirFor(dirs)
		if err != nil {
			return err
		}
		if err := createFile(d, base, f.Data, fileMode(f.Mode), m); err != nil {
			return err
		}
	}
	if down {
		if err := createFile(st, "down", nil, downMode, m); err != nil {
			return err
		}
	}
	if owner != nil {
		if err := makeSkeleton(st, *owner); err != nil {
			return err
		}
		if logDir, ok := subdirs["log"]; ok {
			if err := makeSkeleton(logDir, *owner); err != nil {
				return err
			}
		}
	}
	for _, d := range subdirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return syncDir(st)
}

func renameNoReplace(d *safefs.Dir, from, to string) error {
	err := unix.Renameat2(d.FD(), from, d.FD(), to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// The filesystem cannot do RENAME_NOREPLACE: check, then rename (racy, but nothing
		// else creates gateway-* entries).
		if _, lerr := d.Lstat(to); lerr == nil {
			return fmt.Errorf("rename %s to %s: %w", from, to, fs.ErrExist)
		}
		err = unix.Renameat(d.FD(), from, d.FD(), to)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			err = fs.ErrExist
		}
		return fmt.Errorf("rename %s to %s in %s: %w", from, to, d.Path(), err)
	}
	return nil
}

// openSlot opens the slot directory slotDir without following a symlink in its last component.
// Its parent (the scandir) is trusted.
func openSlot(slotDir string) (*safefs.Dir, error) {
	slotDir = filepath.Clean(slotDir)
	if err := checkSlotName(filepath.Base(slotDir)); err != nil {
		return nil, err
	}
	parent, err := safefs.OpenDir(filepath.Dir(slotDir))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return parent.OpenDir(filepath.Base(slotDir))
}

// WriteFile atomically replaces one file of a slot (temp in the same dir, then rename).
//
// slotDir must be a "gateway-*" directory; it and every directory in f.Name are opened without
// following symlinks (a symlink is refused), and a missing directory such as log/ is created
// 0755. The data goes to ".<base>.tmp-<random>" beside the target (O_EXCL|O_NOFOLLOW), which is
// chmodded to f.Mode, fsynced and renamed over the target, so a reader sees the old or the new
// bytes, never a mix. The temp file is removed on failure. It always writes: comparing bytes
// first is the caller's job. A running service is not restarted.
func WriteFile(slotDir string, f File) error {
	dirs, base, err := splitFileName(f.Name)
	if err != nil {
		return fmt.Errorf("write %s: %w", slotDir, err)
	}
	d, err := openSlot(slotDir)
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", slotDir, f.Name, err)
	}
	defer func() { d.Close() }()
	for _, name := range dirs {
		sub, err := mkdirIn(d, name, dirMode, nil, false, nil)
		if err != nil {
			return fmt.Errorf("write %s/%s: %w", slotDir, f.Name, err)
		}
		d.Close()
		d = sub
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("write %s/%s: %w", slotDir, f.Name, err)
	}
	tmp := "." + base + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := createFile(d, tmp, f.Data, fileMode(f.Mode), nil); err != nil {
		_ = unix.Unlinkat(d.FD(), tmp, 0)
		return fmt.Errorf("write %s/%s: %w", slotDir, f.Name, err)
	}
	if err := unix.Renameat(d.FD(), tmp, d.FD(), base); err != nil {
		_ = unix.Unlinkat(d.FD(), tmp, 0)
		return fmt.Errorf("write %s/%s: %w", slotDir, f.Name, pathErr("rename", d.Path()+"/"+tmp, err))
	}
	if err := syncDir(d); err != nil {
		return fmt.Errorf("write %s/%s: %w", slotDir, f.Name, err)
	}
	return nil
}

// SetDown creates (empty, 0644) or removes <slotDir>/down. It is idempotent: an existing down
// (of any type) is left alone, a missing one is not an error to remove. slotDir must be a
// "gateway-*" directory and is opened without following a symlink. s6-supervise reads down only
// when it starts, so this changes the slot's marker, not the running service (see Client).
func SetDown(slotDir string, down bool) error {
	d, err := openSlot(slotDir)
	if err != nil {
		return fmt.Errorf("set down %s: %w", slotDir, err)
	}
	defer d.Close()
	p := d.Path() + "/down"
	if !down {
		if err := unix.Unlinkat(d.FD(), "down", 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set down: %w", pathErr("unlink", p, err))
		}
		return nil
	}
	if _, err := d.Lstat("down"); err == nil {
		return nil
	}
	fd, err := unix.Openat(d.FD(), "down", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, downMode)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return fmt.Errorf("set down: %w", pathErr("create", p, err))
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, downMode); err != nil {
		return fmt.Errorf("set down: %w", pathErr("chmod", p, err))
	}
	return nil
}

// RemoveSlot removes <scandir>/<slot> recursively without following symlinks.
//
// slot must be "gateway-<name>" without "/". A missing slot is not an error (idempotent); a
// symlink or non-directory by that name is foreign and is refused, never removed. It does not
// stop the supervisor: take the service down first (Client.Down, Client.Kill), Client.RescanPrune after. A supervisor still
// running in the directory may write supervise/status during the removal; that race is retried.
func RemoveSlot(scandir, slot string) error {
	if err := checkSlotName(slot); err != nil {
		return fmt.Errorf("remove slot: %w", err)
	}
	sd, err := safefs.OpenDir(scandir)
	if err != nil {
		return fmt.Errorf("remove slot %s: %w", slot, err)
	}
	defer sd.Close()
	st, err := sd.Lstat(slot)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("remove slot: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("remove slot %s/%s: not a directory (a symlink or file is foreign and is left alone)", sd.Path(), slot)
	}
	if err := removeAllRetry(sd.Path() + "/" + slot); err != nil {
		return fmt.Errorf("remove slot: %w", err)
	}
	return nil
}

// removeAllRetry is os.RemoveAll, retried a few times on ENOTEMPTY: a supervisor that is still
// running in the directory rewrites supervise/status (status.new, then rename) whenever it handles
// a command or an event, which can slip a new entry into a directory between listing and rmdir.
func removeAllRetry(p string) error {
	var err error
	for range 10 {
		if err = os.RemoveAll(p); err == nil || !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
	}
	return err
}

// RemoveStaging removes the staging entry <scandir>/<name> (a ".gateway-*.tmp") without following symlinks.
//
// A name of any other shape is refused. A symlink (or other non-directory) is unlinked, leaving
// its target alone; a directory is removed recursively. A missing entry is not an error.
func RemoveStaging(scandir, name string) error {
	if !IsStagingName(name) {
		return fmt.Errorf("remove staging %q: not a .%s*.tmp name (nothing else in the scandir is touched)", name, SlotPrefix)
	}
	sd, err := safefs.OpenDir(scandir)
	if err != nil {
		return fmt.Errorf("remove staging %s: %w", name, err)
	}
	defer sd.Close()
	if err := removeEntry(sd, name); err != nil {
		return fmt.Errorf("remove staging: %w", err)
	}
	return nil
}
