package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// svscan is a real s6-svscan on a scandir, started by this process in its own session.
type svscan struct {
	e       *env
	scandir string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startSvscan starts s6-svscan with a service limit of limit (loggers included) and waits
// until it listens on .s6-svscan/control.
func (e *env) startSvscan(scandir string, limit int) (*svscan, error) {
	logf, err := os.Create(scandir + ".svscan.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(e.s6Bin, "s6-svscan"), e.svscanOpt, strconv.Itoa(limit), scandir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), "PATH="+e.s6Bin+":/usr/bin:/bin")
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close()
	s := &svscan{e: e, scandir: scandir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	register(s.stop)
	ctl := filepath.Join(scandir, ".s6-svscan", "control")
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := unix.Open(ctl, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("s6-svscan exited at start (log %s.svscan.log)", scandir)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("s6-svscan on %s not listening after 10 s: %w", scandir, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop tells s6-svscan to bring everything down and exit (s6-svscanctl -t), waits for it and
// for every process whose working directory is under the scandir (supervisors, gateways,
// loggers), and SIGKILLs by pid whatever is left after 20 s (a gateway that ignores SIGTERM).
// It is idempotent.
func (s *svscan) stop() {
	select {
	case <-s.done:
	default:
		_ = exec.Command(filepath.Join(s.e.s6Bin, "s6-svscanctl"), "-t", s.scandir).Run()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			logf("s6-svscan %d did not exit 20 s after -t; killing it", s.cmd.Process.Pid)
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := procsUnder(s.scandir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procsUnder lists the processes whose working directory is dir or below it ("(deleted)"
// included): what an s6 tree on dir started, and nothing else on the machine.
func procsUnder(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil {
			continue
		}
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			if st, err := readStat(pid); err == nil && st.state != 'Z' {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// slotStatus is what the rows read from a slot's supervise/status: the flags byte and pid.
type slotStatus struct {
	ok          bool // the file exists and has a known size
	pid         int
	wantUp, fin bool
}

// readSlotStatus reads <slot>/supervise/status (35 or 43 bytes; flags are the last byte).
func readSlotStatus(slotDir string) slotStatus {
	b, err := os.ReadFile(filepath.Join(slotDir, "supervise", "status"))
	if err != nil || (len(b) != 35 && len(b) != 43) {
		return slotStatus{}
	}
	f := b[len(b)-1]
	return slotStatus{ok: true, pid: int(binary.BigEndian.Uint64(b[24:32])), wantUp: f&4 != 0, fin: f&2 != 0}
}

func (st slotStatus) up() bool { return st.ok && st.pid != 0 && !st.fin && st.wantUp }

// waitAllUp waits until every slot's service is up and wanted up, or until deadline. It checks
// the slots in order and stops a sweep at the first one still down, so a sweep costs one read
// while s6 is busy starting services, and polls every 5 ms. It returns when the last slot was
// seen up.
func waitAllUp(scandir string, names []string, deadline time.Time) (time.Time, error) {
	i := 0
	for {
		for i < len(names) && readSlotStatus(filepath.Join(scandir, "gateway-"+names[i])).up() {
			i++
		}
		if i == len(names) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d slots up at the deadline (first not up: gateway-%s)", i, len(names), names[i])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gatewayPID returns the pid of a slot's service and its start time, for alive().
func gatewayPID(slotDir string) (int, uint64, error) {
	st := readSlotStatus(slotDir)
	if !st.up() {
		return 0, 0, errors.New(slotDir + ": service not up")
	}
	ps, err := readStat(st.pid)
	if err != nil {
		return 0, 0, err
	}
	return st.pid, ps.startTime, nil
}
