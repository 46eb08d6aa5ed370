//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Helpers for the volume-lease specs (lease_test.go): a second "container" on the same volume,
// a container stop by SIGKILL, and views of which scandir runs gateways. They only add to the
// harness in harness_test.go.

// leaseFile is HERMES_HOME/.profile-controller.lease.
func (e *Env) leaseFile() string { return filepath.Join(e.Home, ".profile-controller.lease") }

// NewPeer is another container on e's volume: its own scandir, s6 tree, runtime dir and config,
// and e's HERMES_HOME, reached through a symlink under the peer's own root (hermesHome is
// configuration, followed as given), so that the peer's gateways, whose command lines name the
// volume, count as the peer's processes and not e's. Nothing is started.
func (e *Env) NewPeer() *Env {
	p := NewEnvWith(e.opts)
	link := filepath.Join(p.Root, "shared-home")
	Expect(os.Symlink(e.Home, link)).To(Succeed())
	p.Home = link
	Expect(os.WriteFile(p.ConfigPath, []byte(p.configYAML()), 0o644)).To(Succeed())
	return p
}

// ownerAndStandby starts container a converged on names and owning the volume, then container
// b beside it, standing by.
func ownerAndStandby(names []string) (a, b *Env) {
	a = NewEnv()
	b = a.NewPeer()
	a.RunningProfiles(names...)
	a.StartConverged(func(g Gomega) { ExpectOnlyActing(g, a, names) })
	b.StartSvscan()
	b.StartController()
	Eventually(func(g Gomega) { g.Expect(b.LogsMatching("Standby")).NotTo(BeEmpty()) }).WithTimeout(convergeTimeout).Should(Succeed())
	return a, b
}

// KillContainer stops this container the hard way: every process of the Env (the controller,
// s6-svscan, every supervisor, gateway and logger) gets SIGKILL at once, as when the container's
// cgroup is killed, and its tmpfs (the scandir and the runtime dir) goes (WipeRun). The kernel
// then frees the controller's flock. The Env forgets its controller and s6 tree, so the teardown
// does not stop them again.
func (e *Env) KillContainer() {
	ctl, svscan := e.controller, e.svscan
	for _, p := range e.Processes() {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	if ctl != nil {
		_ = syscall.Kill(-ctl.Process.Pid, syscall.SIGKILL)
		<-e.controllerDone
	}
	if svscan != nil {
		_ = syscall.Kill(-svscan.Process.Pid, syscall.SIGKILL)
		<-e.svscanDone
	}
	e.controller, e.svscan = nil, nil
	Eventually(func() []Proc {
		for _, p := range e.Processes() {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		return e.Processes()
	}).WithTimeout(convergeTimeout).WithPolling(20 * time.Millisecond).Should(BeEmpty())
	e.WipeRun()
}

// Slots lists the gateway-* entries of the scandir (none when it is gone with its container).
func (e *Env) Slots(g Gomega) []string {
	entries, err := os.ReadDir(e.Scandir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	g.Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "gateway-") {
			out = append(out, ent.Name())
		}
	}
	return out
}

// UpGateways lists the profiles whose gateway s6 reports up in this scandir.
func (e *Env) UpGateways(g Gomega) []string {
	var out []string
	for _, s := range e.Slots(g) {
		if e.Svstat(s)["up"] == "true" {
			out = append(out, strings.TrimPrefix(s, "gateway-"))
		}
	}
	return out
}

// ExpectOnlyActing asserts (through g) that acting runs every named gateway, and that none of
// the others has a slot at all: exactly one set of gateways on the volume.
func ExpectOnlyActing(g Gomega, acting *Env, names []string, others ...*Env) {
	g.Expect(acting.UpGateways(g)).To(ConsistOf(names), "gateways up in %s", acting.Scandir)
	for _, o := range others {
		g.Expect(o.Slots(g)).To(BeEmpty(), "slots in the standby's scandir %s", o.Scandir)
	}
}

// UseMetrics gives the Env's controller a free metrics address and returns it.
func (e *Env) UseMetrics() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	Expect(ln.Close()).To(Succeed())
	e.SetConfig("metricsAddr", strconv.Quote(addr))
	return addr
}

// HTTPGet returns the status code and body of http://addr/path (through g).
func HTTPGet(g Gomega, addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

// ownedByRE matches "owned by host <host> pid <pid> since <RFC 3339>".
func ownedByRE(pid int) string {
	return fmt.Sprintf(`owned by host \S+ pid %d since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`, pid)
}

// DumpPeersOnFailure dumps every Env (DumpOnFailure) and the lease file.
func DumpPeersOnFailure(envs ...*Env) {
	if !CurrentSpecReport().Failed() || len(envs) == 0 {
		return
	}
	data, err := os.ReadFile(envs[0].leaseFile())
	fmt.Fprintf(GinkgoWriter, "\n===== lease file %s =====\n%q %v\n", envs[0].leaseFile(), data, err)
	for _, e := range envs {
		if e != nil {
			e.DumpOnFailure()
		}
	}
}

// NeverBoth samples both Envs every 50 ms until the returned stop is called, and stop returns
// the moments at which both ran gateways at once (empty: never).
func NeverBoth(a, b *Env) (stop func() []string) {
	done, finished := make(chan struct{}), make(chan struct{})
	var both []string
	go func() {
		defer GinkgoRecover()
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ua, ub := a.UpGateways(Default), b.UpGateways(Default)
			if len(ua) > 0 && len(ub) > 0 {
				both = append(both, fmt.Sprintf("%s: %v and %v", time.Now().Format(time.StampMilli), ua, ub))
			}
		}
	}()
	return func() []string {
		close(done)
		<-finished
		return both
	}
}
