package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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

// The boot floor: the baseline's file work (register_baseline.py) done by Go with raw
// syscalls on directory fds and nothing else — no staging, no rename, no fsync, no memory,
// no safety checks beyond O_NOFOLLOW. It runs as this executable again with bootFloorEnv set
// to "<HERMES_HOME>:<scandir>", and says how far below the baseline any single process can go
// on this machine.

// bootFloorEnv makes a run of this executable the boot floor process.
const bootFloorEnv = "PC_BENCH_BOOT_FLOOR"

func init() {
	// The rusage helper between the driver and the floor inherits the variable too.
	if v := os.Getenv(bootFloorEnv); v != "" && (len(os.Args) < 2 || os.Args[1] != rusageHelperArg) {
		home, scandir, _ := strings.Cut(v, ":")
		if err := bootFloorMain(home, scandir); err != nil {
			fmt.Fprintln(os.Stderr, "boot floor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

const (
	floorRun    = "#!/command/with-contenv sh\nset -e\ncd /opt/data\n. /opt/hermes/.venv/bin/activate\nexec s6-setuidgid hermes hermes gateway run --replace\n"
	floorLogRun = "#!/command/with-contenv sh\n: \"${HERMES_HOME:=/opt/data}\"\nexec s6-setuidgid hermes s6-log n10 s1000000 T \"$HERMES_HOME/logs/gateways\"\n"
)

func bootFloorMain(home, scandir string) error {
	const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	sd, err := unix.Open(scandir, dirFlags, 0)
	if err != nil {
		return err
	}
	names, err := os.ReadDir(filepath.Join(home, "profiles"))
	if err != nil {
		return err
	}
	var boot strings.Builder
	buf := make([]byte, 64<<10)
	slot := func(name, dir string) error {
		pd, err := unix.Open(dir, dirFlags, 0)
		if err != nil {
			return err
		}
		defer unix.Close(pd)
		var st unix.Stat_t
		if name != "default" && unix.Fstatat(pd, "SOUL.md", &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return nil
		}
		start := false
		if f, err := unix.Openat(pd, "gateway_state.json", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			n, _ := unix.Read(f, buf)
			unix.Close(f)
			var doc map[string]any
			_ = json.Unmarshal(buf[:max(n, 0)], &doc)
			start = doc["gateway_state"] == "running"
		}
		_ = unix.Unlinkat(pd, "gateway.pid", 0)
		_ = unix.Unlinkat(pd, "processes.json", 0)
		s := "gateway-" + name
		if err := unix.Mkdirat(sd, s, 0o755); err != nil {
			return err
		}
		d, err := unix.Openat(sd, s, dirFlags, 0)
		if err != nil {
			return err
		}
		defer unix.Close(d)
		write := func(at int, file, text string, mode uint32) error {
			f, err := unix.Openat(at, file, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
			if err != nil {
				return err
			}
			_, err = unix.Write(f, []byte(text))
			unix.Close(f)
			return err
		}
		if err := write(d, "type", "longrun\n", 0o644); err != nil {
			return err
		}
		if err := write(d, "run", floorRun, 0o755); err != nil {
			return err
		}
		if err := unix.Mkdirat(d, "log", 0o755); err != nil {
			return err
		}
		if err := write(d, "log/run", floorLogRun, 0o755); err != nil {
			return err
		}
		if !start {
			if err := write(d, "down", "", 0o644); err != nil {
				return err
			}
		}
		fmt.Fprintf(&boot, "profile=%s action=registered\n", name)
		return nil
	}
	if err := slot("default", home); err != nil {
		return err
	}
	for _, e := range names {
		if err := slot(e.Name(), filepath.Join(home, "profiles", e.Name())); err != nil {
			return err
		}
	}
	logs := filepath.Join(home, "logs")
	_ = os.MkdirAll(logs, 0o755)
	f, err := os.OpenFile(filepath.Join(logs, "container-boot-floor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(boot.String())
	return err
}
