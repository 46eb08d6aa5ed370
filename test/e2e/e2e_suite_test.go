//go:build e2e

// Package e2e drives the profile-controller binary against a real s6-svscan tree, with
// test/fakegateway standing in for the hermes gateway. Run it with
//
//	go test -tags e2e -count=1 ./test/e2e/... -ginkgo.v
//
// It needs the s6 binaries (Debian: apt-get install s6). Without them the suite is skipped,
// unless CI is set: then it fails.
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var (
	// controllerBin and fakeGatewayBin are built once per suite run.
	controllerBin, fakeGatewayBin string
	// s6BinDir holds s6-svscan, s6-svscanctl, s6-svc and s6-svstat.
	s6BinDir string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "profile-controller e2e")
}

var _ = BeforeSuite(func() {
	s6BinDir = findS6BinDir()
	if s6BinDir == "" {
		msg := "s6-svscan not found on PATH, in /command or in /usr/bin: install s6 (Debian: apt-get install s6)"
		if os.Getenv("CI") != "" {
			Fail(msg + "; CI is set, so a missing s6 is a failure, not a skip")
		}
		Skip(msg + "; skipping the e2e suite (set CI to make this a failure)")
	}
	for _, tool := range []string{"s6-svscanctl", "s6-svc", "s6-svstat", "s6-supervise"} {
		Expect(filepath.Join(s6BinDir, tool)).To(BeAnExistingFile(), "s6 installation in %s is incomplete", s6BinDir)
	}

	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	Expect(err).NotTo(HaveOccurred(), "go env GOMOD")
	moduleRoot := filepath.Dir(strings.TrimSpace(string(gomod)))
	Expect(filepath.Join(moduleRoot, "go.mod")).To(BeAnExistingFile())

	binDir, err := os.MkdirTemp("", "pc-e2e-bin-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, binDir)
	controllerBin = filepath.Join(binDir, "profile-controller")
	fakeGatewayBin = filepath.Join(binDir, "fakegateway")
	for pkg, out := range map[string]string{
		"./cmd/profile-controller": controllerBin,
		"./test/fakegateway":       fakeGatewayBin,
	} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = moduleRoot
		output, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "go build %s:\n%s", pkg, output)
	}
})

// findS6BinDir returns the directory of s6-svscan: PATH first, then s6-overlay's /command,
// then Debian's /usr/bin. It returns "" when s6 is not installed.
func findS6BinDir() string {
	if p, err := exec.LookPath("s6-svscan"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return filepath.Dir(abs)
		}
	}
	for _, dir := range []string{"/command", "/usr/bin"} {
		if fi, err := os.Stat(filepath.Join(dir, "s6-svscan")); err == nil && fi.Mode()&0o111 != 0 {
			return dir
		}
	}
	return ""
}
