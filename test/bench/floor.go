package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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

// The no-op floor: the syscalls a `reconcile --once` with nothing to do cannot avoid under the
// controller's rules (never follow a symlink, probe liveness every time, trust a cached file
// only after a stat), made by Go on directory fds with nothing else: per profile, the memory
// file read (open, read, close), the profile dir (open, SOUL.md and gateway_state.json
// stats, close) and the slot (open; type, run, finish and down stats; log/run through an
// open log dir; supervise opened, its lock probed with F_GETLK, its status stat'ed; closes):
// 22 syscalls, the controller's count, spread over every P as the controller spreads its
// looks. No decoding, no planning, no allocation past the listings. It runs as this
// executable again with noopFloorEnv set to "<HERMES_HOME>:<scandir>:<memory dir>".

// noopFloorEnv makes a run of this executable the no-op floor process.
const noopFloorEnv = "PC_BENCH_NOOP_FLOOR"

func init() {
	if v := os.Getenv(noopFloorEnv); v != "" && (len(os.Args) < 2 || os.Args[1] != rusageHelperArg) {
		parts := strings.SplitN(v, ":", 3)
		if len(parts) != 3 {
			fmt.Fprintln(os.Stderr, "no-op floor: want home:scandir:memory")
			os.Exit(2)
		}
		if err := noopFloorMain(parts[0], parts[1], parts[2]); err != nil {
			fmt.Fprintln(os.Stderr, "no-op floor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func noopFloorMain(home, scandir, memory string) error {
	const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	const fileFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	open := func(path string) (int, error) { return unix.Open(path, dirFlags, 0) }
	hd, err := open(home)
	if err != nil {
		return err
	}
	pd, err := open(filepath.Join(home, "profiles"))
	if err != nil {
		return err
	}
	sd, err := open(scandir)
	if err != nil {
		return err
	}
	md, err := open(memory)
	if err != nil {
		return err
	}
	names, err := os.ReadDir(filepath.Join(home, "profiles"))
	if err != nil {
		return err
	}
	if _, err := os.ReadDir(scandir); err != nil {
		return err
	}
	if _, err := os.ReadDir(memory); err != nil {
		return err
	}
	all := make([]string, 0, len(names)+1)
	all = append(all, "default")
	for _, e := range names {
		all = append(all, e.Name())
	}
	var failed atomic.Int64
	look := func(name string, buf []byte) {
		var st unix.Stat_t
		if f, err := unix.Openat(md, "m-"+name, fileFlags, 0); err == nil {
			if n, _ := unix.Read(f, buf); n <= 0 {
				failed.Add(1)
			}
			unix.Close(f)
		}
		p := hd
		if name != "default" {
			var err error
			if p, err = unix.Openat(pd, name, dirFlags, 0); err != nil {
				failed.Add(1)
				return
			}
			_ = unix.Fstatat(p, "SOUL.md", &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		_ = unix.Fstatat(p, "gateway_state.json", &st, unix.AT_SYMLINK_NOFOLLOW)
		if p != hd {
			unix.Close(p)
		}
		s, err := unix.Openat(sd, "gateway-"+name, dirFlags, 0)
		if err != nil {
			failed.Add(1)
			return
		}
		defer unix.Close(s)
		for _, f := range [...]string{"type", "run", "finish", "down"} {
			_ = unix.Fstatat(s, f, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if l, err := unix.Openat(s, "log", dirFlags, 0); err == nil {
			_ = unix.Fstatat(l, "run", &st, unix.AT_SYMLINK_NOFOLLOW)
			unix.Close(l)
		}
		sup, err := unix.Openat(s, "supervise", dirFlags, 0)
		if err != nil {
			failed.Add(1)
			return
		}
		defer unix.Close(sup)
		if lf, err := unix.Openat(sup, "lock", fileFlags, 0); err == nil {
			lk := unix.Flock_t{Type: unix.F_RDLCK}
			if unix.FcntlFlock(uintptr(lf), unix.F_GETLK, &lk) != nil || lk.Type == unix.F_UNLCK {
				failed.Add(1)
			}
			unix.Close(lf)
		}
		_ = unix.Fstatat(sup, "status", &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 4) {
		wg.Go(func() {
			buf := make([]byte, 16<<10)
			for {
				lo := int(next.Add(16)) - 16
				if lo >= len(all) {
					return
				}
				for _, name := range all[lo:min(lo+16, len(all))] {
					look(name, buf)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d profiles were not converged and supervised", n, len(all))
	}
	return nil
}

// runNoopFloor runs the no-op floor once on w, which must be converged and supervised.
func (w *world) runNoopFloor() (once, error) {
	self, err := os.Executable()
	if err != nil {
		return once{}, err
	}
	o, err := runProcessEnv([]string{self}, []string{noopFloorEnv + "=" + w.home + ":" + w.scandir + ":" + filepath.Join(w.runtime, "memory")}, 5*time.Minute)
	if err == nil && o.exit != 0 {
		err = fmt.Errorf("no-op floor: exit %d: %s", o.exit, firstLine(o.stderr))
	}
	return o, err
}
