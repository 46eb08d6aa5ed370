//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The unprivileged account the non-root spec creates (and deletes again).
const (
	nonrootUser = "pctest"
	nonrootUID  = 10077
)

// createNonrootUser adds a real system account nonrootUser (no home, no login shell) with a
// group of its own, and removes both when the spec ends. It returns the account's uid and gid.
func createNonrootUser() (uid, gid int) { return createUser(nonrootUser, nonrootUID) }

// requireRoot skips a spec that needs root when not root, and fails it instead under CI, where a
// skip would hide what was not tested. why says what the spec does as root.
func requireRoot(why string) {
	if os.Geteuid() == 0 {
		return
	}
	msg := why + ": it needs root"
	if os.Getenv("CI") != "" {
		Fail(msg + "; CI is set, so this is a failure, not a skip")
	}
	Skip(msg)
}

// createUser adds the system account name with uid (no home, no login shell) and a group of its
// own, removes a leftover of an interrupted run first, and removes both when the spec ends. It
// fails the spec when uid belongs to another account. It returns the uid and gid.
func createUser(name string, id int) (uid, gid int) {
	if u, err := user.LookupId(strconv.Itoa(id)); err == nil && u.Username != name {
		Fail(fmt.Sprintf("uid %d is taken by %q; this spec needs it for %s", id, u.Username, name))
	}
	if _, err := user.Lookup(name); err == nil {
		out, err := exec.Command("userdel", name).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "userdel leftover %s: %s", name, out)
	}
	out, err := exec.Command("useradd", "--no-create-home", "--user-group", "--uid", strconv.Itoa(id),
		"--shell", "/usr/sbin/nologin", name).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "useradd: %s", out)
	DeferCleanup(func() {
		out, err := exec.Command("userdel", name).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "userdel %s: %s", name, out)
		if _, err := user.LookupGroup(name); err == nil {
			_ = exec.Command("groupdel", name).Run()
		}
	})
	u, err := user.Lookup(name)
	Expect(err).NotTo(HaveOccurred())
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// asNonroot runs argv as nonrootUser through runuser (its own groups, a clean environment),
// bounded by 20 s, and returns the combined output and exit code.
func asNonroot(argv ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", nonrootUser, "--"}, argv...)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + s6BinDir + ":/usr/bin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exitErr):
		return out.String(), exitErr.ExitCode()
	default:
		Fail(fmt.Sprintf("runuser %v: %v", argv, err))
		return "", -1
	}
}

// addForeignService publishes a plain s6 service (not a gateway slot, no skeleton: s6's own
// root-only supervise/) in the scandir and waits until it runs.
func (e *Env) addForeignService(name string) string {
	staging, err := os.MkdirTemp(e.Root, "foreign-")
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(staging, 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(staging, "run"), []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755)).To(Succeed())
	dir := filepath.Join(e.Scandir, name)
	Expect(os.Rename(staging, dir)).To(Succeed())
	out, rc := S6("s6-svscanctl", "-a", e.Scandir)
	Expect(rc).To(Equal(0), out)
	Eventually(func(g Gomega) {
		g.Expect(e.Svstat(dir)).To(HaveKeyWithValue("up", "true"))
	}).WithTimeout(convergeTimeout).Should(Succeed())
	return dir
}

var _ = Describe("security: with gatewayUser set, that user drives its gateway slots without root, and nothing else", func() {
	var env *Env
	AfterEach(func() {
		if env != nil {
			env.DumpOnFailure()
		}
	})

	It("lets the user run s6-svstat, s6-svc -d/-u and s6-svwait on its slot, but not create files in supervise/ or touch another service", func() {
		requireRoot("the non-root spec creates a user and runs commands as it")
		for _, tool := range []string{"runuser", "useradd", "userdel"} {
			_, err := exec.LookPath(tool)
			Expect(err).NotTo(HaveOccurred(), "%s is needed", tool)
		}
		_, gid := createNonrootUser()

		// A settle period longer than the spec: the controller must not undo the user's s6-svc
		// while we look.
		env = NewEnvWith(Options{SettlePeriod: 10 * time.Minute})
		Expect(os.Chmod(env.Root, 0o755)).To(Succeed()) // MkdirTemp made it 0700
		cfg, err := os.OpenFile(env.ConfigPath, os.O_WRONLY|os.O_APPEND, 0)
		Expect(err).NotTo(HaveOccurred())
		_, err = fmt.Fprintf(cfg, "gatewayUser: %q\n", nonrootUser)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Close()).To(Succeed())

		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "alpha") })
		slot := env.SlotDir("alpha")

		By("the skeleton: root-owned, the user's group may traverse supervise/ and write control")
		for _, d := range []string{slot, filepath.Join(slot, "log")} {
			for name, mode := range map[string]fs.FileMode{
				"event":             fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o730,
				"supervise":         fs.ModeDir | 0o710,
				"supervise/control": fs.ModeNamedPipe | 0o620,
			} {
				fi, err := os.Lstat(filepath.Join(d, name))
				Expect(err).NotTo(HaveOccurred())
				st := fi.Sys().(*syscall.Stat_t)
				Expect(fi.Mode()).To(Equal(mode), "%s/%s", d, name)
				Expect([]int{int(st.Uid), int(st.Gid)}).To(Equal([]int{0, gid}), "%s/%s owner", d, name)
			}
		}

		By("s6-svstat as the user")
		out, rc := asNonroot(s6Tool("s6-svstat"), slot)
		Expect(rc).To(Equal(0), out)
		Expect(out).To(HavePrefix("up "))

		By("s6-svc -d and s6-svwait -D as the user")
		out, rc = asNonroot(s6Tool("s6-svc"), "-d", slot)
		Expect(rc).To(Equal(0), out)
		out, rc = asNonroot(s6Tool("s6-svwait"), "-D", "-t", "3000", slot)
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())

		By("s6-svwait -u (subscribed first) and s6-svc -u as the user")
		waited := make(chan string, 1)
		go func() {
			defer GinkgoRecover()
			out, rc := asNonroot(s6Tool("s6-svwait"), "-u", "-t", "3000", slot)
			waited <- fmt.Sprintf("rc=%d %s", rc, out)
		}()
		Eventually(func() int {
			ents, _ := os.ReadDir(filepath.Join(slot, "event"))
			return len(ents)
		}).WithTimeout(5*time.Second).Should(BeNumerically(">", 0), "s6-svwait never subscribed")
		out, rc = asNonroot(s6Tool("s6-svc"), "-u", slot)
		Expect(rc).To(Equal(0), out)
		Eventually(waited).WithTimeout(5 * time.Second).Should(Receive(HavePrefix("rc=0 ")))
		Eventually(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())

		By("the user cannot create, link or remove anything in supervise/")
		victim := filepath.Join(env.Root, "victim")
		Expect(os.WriteFile(victim, []byte("root's\n"), 0o644)).To(Succeed())
		for _, script := range []string{
			`: > "$1/supervise/x"`, `ln -s "$2" "$1/supervise/status.new"`, `mkfifo "$1/supervise/y"`,
			`rm -f "$1/supervise/lock"`, `: > "$1/log/supervise/x"`, `: > "$1/run"`, `: > "$1/z"`,
		} {
			out, rc := asNonroot("/bin/sh", "-c", script, "sh", slot, victim)
			Expect(rc).NotTo(Equal(0), "%q succeeded as %s: %s", script, nonrootUser, out)
		}
		for _, name := range []string{"x", "y", "status.new"} {
			_, err := os.Lstat(filepath.Join(slot, "supervise", name))
			Expect(errors.Is(err, fs.ErrNotExist)).To(BeTrue(), "supervise/%s exists", name)
		}
		Expect(os.ReadFile(victim)).To(Equal([]byte("root's\n")))

		By("the same commands fail on a non-gateway service of the same scandir")
		other := env.addForeignService("s6rc-other")
		for _, argv := range [][]string{
			{s6Tool("s6-svstat"), other},
			{s6Tool("s6-svc"), "-d", other},
			{s6Tool("s6-svc"), "-u", other},
			{s6Tool("s6-svwait"), "-u", "-t", "1000", other},
		} {
			out, rc := asNonroot(argv...)
			Expect(rc).NotTo(Equal(0), "%s succeeded as %s: %s", strings.Join(argv, " "), nonrootUser, out)
			Expect(out).To(Or(ContainSubstring("ermission denied"), ContainSubstring("unable to subscribe")), strings.Join(argv, " "))
		}
		Expect(env.Svstat(other)).To(HaveKeyWithValue("up", "true"), "the user changed a non-gateway service")
		Expect(env.Svstat("gateway-alpha")).To(HaveKeyWithValue("up", "true"))

		env.StopController()
	})
})
