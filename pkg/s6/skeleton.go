package s6

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// makeSkeleton gives the gateway user's group (o.GID) the access s6-svperms -G/-E would give,
// before s6-supervise first runs in d:
//
//	event/             root:GID 03730  (fifodir: group members may add subscription FIFOs)
//	supervise/         root:GID 0710   (group may traverse, not list, not create)
//	supervise/control  root:GID 0620   (FIFO: group may write commands)
//
// s6-supervise reuses an existing supervise/ and event/ and leaves their owners and modes alone,
// so these stick. It creates lock, status and death_tally itself, as root, in a directory only
// root can write: a group member can read status and probe lock (s6-svstat), write control
// (s6-svc) and subscribe in event/ (s6-svwait), but cannot plant a symlink or a file under a name
// s6-supervise later opens with O_CREAT (status.new, lock, death_tally). That is why supervise/
// is not owned by the user, as an earlier design had it: the owner of supervise/ could point
// supervise/status.new at any file and have root truncate it.
//
// Every entry is owned by the calling process's uid (-1 to fchown), chowned before it is
// chmodded (a chown may clear setgid), through a descriptor opened without following symlinks.
// makeSkeleton is idempotent: existing directories and a FIFO are reused and their owner and
// mode set again; an entry of the wrong type (or a symlink) is an error and is not touched.
func makeSkeleton(d *safefs.Dir, o Owner) error {
	ev, err := skeletonDir(d, "event", o.GID, fifodirMode)
	if err != nil {
		return err
	}
	ev.Close()
	sup, err := skeletonDir(d, "supervise", o.GID, superviseMode)
	if err != nil {
		return err
	}
	defer sup.Close()
	if err := skeletonFIFO(sup, "control", o.GID, controlMode); err != nil {
		return err
	}
	return syncDir(sup)
}

// skeletonDir creates (or reuses) the real directory name in d and sets it to uid unchanged,
// group gid, mode perm, in that order, on its descriptor.
func skeletonDir(d *safefs.Dir, name string, gid int, perm uint32) (*safefs.Dir, error) {
	if err := unix.Mkdirat(d.FD(), name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, pathErr("mkdir", d.Path()+"/"+name, err)
	}
	sub, err := d.OpenDir(name) // O_NOFOLLOW|O_DIRECTORY: a symlink or a file is refused
	if err != nil {
		return nil, err
	}
	if err := chownChmod(sub.FD(), sub.Path(), perm, &Owner{UID: -1, GID: gid}); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

// skeletonFIFO creates (or reuses) the FIFO name in d and sets it to uid unchanged, group gid,
// mode perm, in that order. The entry is checked with fstatat(AT_SYMLINK_NOFOLLOW) first (no
// side effect whatever it is), opened only if it is a FIFO (O_RDONLY|O_NONBLOCK|O_NOFOLLOW,
// which never blocks), and used only if the descriptor is the inode that was checked.
func skeletonFIFO(d *safefs.Dir, name string, gid int, perm uint32) error {
	p := d.Path() + "/" + name
	if err := unix.Mkfifoat(d.FD(), name, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return pathErr("mkfifo", p, err)
	}
	var checked, st unix.Stat_t
	if err := unix.Fstatat(d.FD(), name, &checked, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("stat", p, err)
	}
	if checked.Mode&unix.S_IFMT != unix.S_IFIFO {
		return pathErr("open", p, fmt.Errorf("it is %s, not a FIFO", safefs.Kind(checked.Mode)))
	}
	fd, err := unix.Openat(d.FD(), name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return pathErr("open", p, err)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return pathErr("stat", p, err)
	}
	if st.Dev != checked.Dev || st.Ino != checked.Ino || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return pathErr("open", p, errors.New("replaced while being opened"))
	}
	return chownChmod(fd, p, perm, &Owner{UID: -1, GID: gid})
}

// renameNoReplace renames from to to inside d, failing with fs.ErrExist when to exists. Plain
// rename(2) would silently replace an empty directory.

// EnsureSkeleton gives the existing slot slotDir (and its log/, when it has one) the supervise
// skeleton of makeSkeleton for o's group: what CreateSlot builds for a new slot, for a slot made
// before gatewayUser was set (or for another user). It is idempotent and safe while the slot's
// supervisors run: s6-supervise keeps its own files in supervise/ (lock, status, death_tally)
// and its descriptors on control and event/, which only change owner group and mode; the
// running service is not restarted. slotDir must be a "gateway-*" directory; it, log/ and every
// skeleton entry are opened without following symlinks, and a skeleton entry of the wrong type
// is an error and is left alone.
func EnsureSkeleton(slotDir string, o Owner) error {
	d, err := openSlot(slotDir)
	if err != nil {
		return fmt.Errorf("skeleton %s: %w", slotDir, err)
	}
	defer d.Close()
	if err := makeSkeleton(d, o); err != nil {
		return fmt.Errorf("skeleton %s: %w", slotDir, err)
	}
	logDir, err := d.OpenDir("log")
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("skeleton %s/log: %w", slotDir, err)
	}
	defer logDir.Close()
	if err := makeSkeleton(logDir, o); err != nil {
		return fmt.Errorf("skeleton %s/log: %w", slotDir, err)
	}
	return nil
}
