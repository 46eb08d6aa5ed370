package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/inotify"
)

// The event floor: what any Go program pays on this machine for one gateway's state rewrite
// when it watches every profile dir and reads the state file it was told about, doing nothing
// else. It runs as this executable again, with floorEnv naming the HERMES_HOME, and is measured
// exactly like the controller's `run` (rowEvent). Its figure is a reference, not judged: the
// gap between it and the controller is what the controller's own work costs.

// floorEnv makes a run of this executable the event floor process.
const floorEnv = "PC_BENCH_EVENT_FLOOR"

func init() {
	if home := os.Getenv(floorEnv); home != "" {
		os.Exit(floorMain(home))
	}
}

// floorMain watches home and every dir of home/profiles with the masks the controller uses
// for them, and for each gateway_state.json renamed in or closed after a write opens the dir,
// checks SOUL.md, opens the file without following a symlink or blocking, checks it is regular
// and reads it (capped), and decodes its JSON, all on one P, as the controller's `run` does.
func floorMain(home string) int {
	runtime.GOMAXPROCS(1)
	w, err := inotify.New()
	if err != nil {
		return 1
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | inotify.Dir
	dirs := map[int32]string{}
	if wd, err := w.Add(home, mask); err == nil {
		dirs[wd] = home
	}
	profiles := filepath.Join(home, "profiles")
	names, _ := os.ReadDir(profiles)
	for _, n := range names {
		p := filepath.Join(profiles, n.Name())
		if wd, err := w.Add(p, mask); err == nil {
			dirs[wd] = p
		}
	}
	buf := make([]byte, 64<<10)
	for {
		evs, err := w.Read()
		if err != nil {
			return 0
		}
		for _, ev := range evs {
			if dir, ok := dirs[ev.WD]; ok && ev.Name == "gateway_state.json" && ev.Has(unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE) {
				floorRead(dir, buf)
			}
		}
	}
}

// floorRead is the least a safe read of one profile's state costs: 7 syscalls and a decode.
func floorRead(dir string, buf []byte) {
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(d)
	var st unix.Stat_t
	if unix.Fstatat(d, "SOUL.md", &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	f, err := unix.Openat(d, "gateway_state.json", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(f)
	if unix.Fstat(f, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	n, err := unix.Read(f, buf)
	if err != nil {
		return
	}
	var doc map[string]any
	_ = json.Unmarshal(buf[:n], &doc)
}

// startFloor starts the event floor process on w's volume.
func (w *world) startFloor() (*daemon, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorEnv+"="+w.home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return startDaemon(cmd, "")
}
