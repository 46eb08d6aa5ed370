//go:build e2e

package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	. "github.com/onsi/gomega"
)

// Helpers of the live-configuration specs (reload_test.go).

// envRunTemplate is the harness's run script plus the extra env, so that extraEnv shows in it.
func envRunTemplate() string {
	return "#!/bin/sh\n{{range .Env}}export {{.Key}}={{shquote .Value}}\n{{end}}exec " + shquote(fakeGatewayBin) +
		" --state-file {{shquote .ProfileDir}}/gateway_state.json\n"
}

// WriteConfigAtomic replaces the config file with text the way editors and config tools do:
// a temp file in the same directory, then a rename.
func (e *Env) WriteConfigAtomic(text string) {
	tmp := e.ConfigPath + ".new"
	Expect(os.WriteFile(tmp, []byte(text), 0o644)).To(Succeed())
	Expect(os.Rename(tmp, e.ConfigPath)).To(Succeed())
}

// ConfigWith is the config file's text with the top-level field set to raw (replaced, or added
// before the templates, as SetConfig does), without writing it.
func (e *Env) ConfigWith(field, raw string) string {
	data, err := os.ReadFile(e.ConfigPath)
	Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(string(data), "\n")
	line := field + ": " + raw
	for i, l := range lines {
		if strings.HasPrefix(l, field+":") {
			lines[i] = line
			return strings.Join(lines, "\n")
		}
	}
	at := len(lines)
	for i, l := range lines {
		if strings.HasPrefix(l, "templates:") {
			at = i
			break
		}
	}
	lines = append(lines[:at], append([]string{line}, lines[at:]...)...)
	return strings.Join(lines, "\n")
}

// Hup sends SIGHUP to the background controller.
func (e *Env) Hup() {
	Expect(syscall.Kill(e.ControllerPid(), syscall.SIGHUP)).To(Succeed())
}

// reloadStatus is the part of `status -o json` about the configuration in use.
type reloadStatus struct {
	Config *struct {
		Generation       int64    `json:"generation"`
		Rendering        string   `json:"rendering"`
		Changed          []string `json:"changed"`
		Refused          string   `json:"refused"`
		RenderingDiffers bool     `json:"renderingDiffers"`
	} `json:"config"`
}

// ConfigStatus runs `status -o json` and returns its config part (through g).
func (e *Env) ConfigStatus(g Gomega) reloadStatus {
	var doc reloadStatus
	stdout := e.statusInto(g, &doc)
	g.Expect(doc.Config).NotTo(BeNil(), "status shows no configuration in use: %s", stdout)
	return doc
}

// freeAddr is a free loopback TCP address for metricsAddr.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	Expect(ln.Close()).To(Succeed())
	return addr
}

// MetricValue scrapes http://addr/metrics and returns the value of the first series whose line
// matches the regular expression series (a name and labels), failing through g.
func MetricValue(g Gomega, addr, series string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile(`(?m)^` + series + ` (\S+)$`).FindStringSubmatch(string(body))
	g.Expect(m).NotTo(BeNil(), "no series %s in:\n%s", series, body)
	v, err := strconv.ParseFloat(m[1], 64)
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

// fileStamp is what shows that a file was rewritten: its inode and mtime.
type fileStamp struct {
	Ino   uint64
	Mtime int64
}

// slotStamps returns the stamp of each managed file of gateway-<name>.
func (e *Env) slotStamps(name string) map[string]fileStamp {
	out := map[string]fileStamp{}
	for _, f := range []string{"type", "run", "finish", "log/run"} {
		fi, err := os.Stat(filepath.Join(e.SlotDir(name), f))
		Expect(err).NotTo(HaveOccurred())
		out[f] = fileStamp{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime().UnixNano()}
	}
	return out
}

// reloadLogs are the background controller's log entries with msg, as "trigger error" strings
// ("Config reloaded" entries carry no error).
func (e *Env) reloadLogs(msg string) []string {
	var out []string
	for _, l := range e.LogsMatching(msg) {
		out = append(out, strings.TrimSpace(l.Str("trigger")+" "+l.Str("error")))
	}
	return out
}
