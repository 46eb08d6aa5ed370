package s6_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/s6"
)

// Unprivileged identities for the permission specs. They need no passwd entry: the s6 tools
// only look at the process's credentials.
const (
	memberID   = 10077 // uid and gid of a member of the slot's group (the gateway user)
	outsiderID = 10078 // uid and gid of another unprivileged user
)

// asUser runs an s6 tool (or /bin/sh) with the given uid and gid and no supplementary groups,
// bounded by 20 s, and returns its combined output and exit code.
func asUser(id int, tool string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := tool
	if !filepath.IsAbs(tool) {
		path = filepath.Join(binDir, tool)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id), Gid: uint32(id), Groups: []uint32{}}}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		Fail(fmt.Sprintf("run %s as %d: %v", tool, id, err))
		return "", -1
	}
}

// The s6-svperms model of the skeleton (see makeSkeleton), checked against the real s6-supervise
// with real unprivileged credentials. It runs its own s6-svscan under a world-traversable
// directory (the suite's temp root is 0700, which an unprivileged user cannot enter).
var _ = Describe("The supervise skeleton (security)", Ordered, func() {
	var (
		root, sd string
		scan     *exec.Cmd
		scanEnd  chan struct{}
	)

	BeforeAll(func() {
		if os.Geteuid() != 0 {
			Skip("needs root: the skeleton is chowned to another group and commands run under other uids")
		}
		var err error
		root, err = os.MkdirTemp("", "s6-skeleton-")
		Expect(err).NotTo(HaveOccurred())
		root, err = filepath.EvalSymlinks(root)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.Chmod(root, 0o755)).To(Succeed())
		sd = filepath.Join(root, "scandir")
		Expect(os.Mkdir(sd, 0o755)).To(Succeed())
		logf, err := os.Create(filepath.Join(root, "svscan.log"))
		Expect(err).NotTo(HaveOccurred())
		defer logf.Close()
		scan = exec.Command(filepath.Join(binDir, "s6-svscan"), sd)
		scan.Stdout, scan.Stderr = logf, logf
		scan.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		Expect(scan.Start()).To(Succeed())
		scanEnd = make(chan struct{})
		go func() { _ = scan.Wait(); close(scanEnd) }()
		Eventually(func() error { return client.Rescan(context.Background(), sd) }).Should(Succeed())
		DeferCleanup(func() {
			if out, err := exec.Command(filepath.Join(binDir, "s6-svscanctl"), "-t", sd).CombinedOutput(); err != nil {
				GinkgoWriter.Printf("s6-svscanctl -t: %v: %s\n", err, out)
				_ = scan.Process.Kill()
			}
			Eventually(scanEnd).WithTimeout(10 * time.Second).Should(BeClosed())
			Eventually(func() []string { return procsUnder(root) }).WithTimeout(10 * time.Second).Should(BeEmpty())
			Expect(os.RemoveAll(root)).To(Succeed())
		})
	})

	// publish creates a slot with the skeleton for memberID's group (or none) and waits until
	// s6-supervise runs in it and in its log/.
	publish := func(ctx context.Context, slot string, owner *s6.Owner) string {
		dir := filepath.Join(sd, slot)
		Expect(s6.CreateSlot(sd, slot, gatewayFiles, false, owner)).To(Succeed())
		Expect(client.Rescan(ctx, sd)).To(Succeed())
		Expect(s6.WaitSupervised(ctx, dir, waitLimit)).To(Succeed())
		Expect(s6.WaitSupervised(ctx, filepath.Join(dir, "log"), waitLimit)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		return dir
	}

	// expectModel asserts the s6-svperms layout in a service dir, and that what s6-supervise
	// itself creates in supervise/ is root's.
	expectModel := func(d string) {
		grouped := func(m fs.FileMode) entry { return entry{mode: m, uid: 0, gid: memberID} }
		ExpectWithOffset(1, lstatEntry(d)).To(Equal(entry{mode: fs.ModeDir | 0o755}), d)
		ExpectWithOffset(1, lstatEntry(filepath.Join(d, "event"))).To(Equal(grouped(fs.ModeDir|fs.ModeSetgid|fs.ModeSticky|0o730)), d+"/event")
		ExpectWithOffset(1, lstatEntry(filepath.Join(d, "supervise"))).To(Equal(grouped(fs.ModeDir|0o710)), d+"/supervise")
		ExpectWithOffset(1, lstatEntry(filepath.Join(d, "supervise", "control"))).To(Equal(grouped(fs.ModeNamedPipe|0o620)), d+"/supervise/control")
		for _, f := range []string{"lock", "status"} {
			e := lstatEntry(filepath.Join(d, "supervise", f))
			ExpectWithOffset(1, e.uid).To(Equal(0), d+"/supervise/"+f)
			ExpectWithOffset(1, e.mode.IsRegular()).To(BeTrue(), d+"/supervise/"+f)
		}
		ents, err := os.ReadDir(filepath.Join(d, "supervise"))
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		for _, e := range ents {
			// s6-supervise writes status.new and renames it over status: one listed can be
			// gone by now.
			fi, err := os.Lstat(filepath.Join(d, "supervise", e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			ExpectWithOffset(1, err).NotTo(HaveOccurred())
			ExpectWithOffset(1, fi.Sys().(*syscall.Stat_t).Uid).To(BeZero(), "supervise/%s is not root's", e.Name())
		}
	}

	It("keeps root:<gid> 0710 supervise/, 0620 control and 03730 event/ after s6-supervise picks the slot up", func(ctx SpecContext) {
		dir := publish(ctx, "gateway-model", &s6.Owner{UID: memberID, GID: memberID})
		expectModel(dir)
		expectModel(filepath.Join(dir, "log"))
		// The slot's own files stay root's and are not group-writable.
		for _, f := range []string{"run", "finish", "type", "log/run"} {
			e := lstatEntry(filepath.Join(dir, f))
			Expect(e.uid).To(Equal(0), f)
			Expect(e.gid).To(Equal(0), f)
			Expect(e.mode.Perm()&0o022).To(BeZero(), f)
		}
	})

	It("lets a group member run s6-svstat, s6-svc -d/-u and s6-svwait on the slot and its logger", func(ctx SpecContext) {
		dir := publish(ctx, "gateway-member", &s6.Owner{UID: memberID, GID: memberID})
		for _, d := range []string{dir, filepath.Join(dir, "log")} {
			out, rc := asUser(memberID, "s6-svstat", d)
			Expect(rc).To(Equal(0), "s6-svstat %s: %s", d, out)
			Expect(out).To(HavePrefix("up "))
		}

		out, rc := asUser(memberID, "s6-svc", "-d", dir)
		Expect(rc).To(Equal(0), "s6-svc -d: %s", out)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeFalse()) }).Should(Succeed())
		out, rc = asUser(memberID, "s6-svwait", "-D", "-t", "3000", dir)
		Expect(rc).To(Equal(0), "s6-svwait -D: %s", out)

		// s6-svwait -u subscribes in event/ first, then waits for the "u" event that -u causes.
		waited := make(chan string, 1)
		go func() {
			defer GinkgoRecover()
			out, rc := asUser(memberID, "s6-svwait", "-u", "-t", "3000", dir)
			waited <- fmt.Sprintf("rc=%d %s", rc, out)
		}()
		Eventually(func() int {
			ents, _ := os.ReadDir(filepath.Join(dir, "event"))
			return len(ents)
		}).Should(BeNumerically(">", 0), "s6-svwait never subscribed in event/")
		out, rc = asUser(memberID, "s6-svc", "-u", dir)
		Expect(rc).To(Equal(0), "s6-svc -u: %s", out)
		Eventually(waited).WithTimeout(5 * time.Second).Should(Receive(HavePrefix("rc=0 ")))
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())

		expectModel(dir)
		expectModel(filepath.Join(dir, "log"))
	})

	It("does not let a group member create, link or replace anything in supervise/", func(ctx SpecContext) {
		dir := publish(ctx, "gateway-plant", &s6.Owner{UID: memberID, GID: memberID})
		victim := filepath.Join(root, "victim")
		Expect(os.WriteFile(victim, []byte("root's bytes\n"), 0o644)).To(Succeed())
		for _, d := range []string{dir, filepath.Join(dir, "log")} {
			sup := filepath.Join(d, "supervise")
			before := dirListing(sup)
			for _, script := range []string{
				`: > "$1/status.new"`,
				`ln -s "$2" "$1/status.new"`,
				`ln -s "$2" "$1/death_tally.new"`,
				`mkfifo "$1/x"`,
				`mkdir "$1/x"`,
				`rm -f "$1/lock"`,
				`mv "$1/status" "$1/y"`,
				`ls "$1"`,
				`cat "$1/control"`,
				`chmod 0777 "$1"`,
			} {
				out, rc := asUser(memberID, "/bin/sh", "-c", script, "sh", sup, victim)
				Expect(rc).NotTo(Equal(0), "%q succeeded as a group member: %s", script, out)
			}
			Expect(dirListing(sup)).To(Equal(before))
		}
		// The supervisor still works and rewrites status: nothing was redirected.
		svc("-d", dir)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeFalse()) }).Should(Succeed())
		Expect(os.ReadFile(victim)).To(Equal([]byte("root's bytes\n")))
		expectModel(dir)
	})

	It("gives a running slot made without it the same skeleton in place (EnsureSkeleton), idempotently, restarting nothing", func(ctx SpecContext) {
		dir := publish(ctx, "gateway-late", nil)
		pid := read(Default, dir).Status.PID
		out, rc := asUser(memberID, "s6-svstat", dir)
		Expect(rc).NotTo(Equal(0), "the group drives a slot without the skeleton: %s", out)
		for range 2 {
			Expect(s6.EnsureSkeleton(dir, s6.Owner{UID: memberID, GID: memberID})).To(Succeed())
			expectModel(dir)
			expectModel(filepath.Join(dir, "log"))
		}
		out, rc = asUser(memberID, "s6-svstat", dir)
		Expect(rc).To(Equal(0), out)
		Expect(out).To(HavePrefix("up "))
		Expect(read(Default, dir).Status.PID).To(Equal(pid), "the skeleton restarted the service")

		By("a symlink where the skeleton goes is refused and left alone")
		evil := publish(ctx, "gateway-evil", nil)
		Expect(os.RemoveAll(filepath.Join(evil, "event"))).To(Succeed())
		Expect(os.Symlink(root, filepath.Join(evil, "event"))).To(Succeed())
		before := lstatEntry(root)
		Expect(s6.EnsureSkeleton(evil, s6.Owner{UID: memberID, GID: memberID})).To(MatchError(ContainSubstring("event")))
		Expect(lstatEntry(root)).To(Equal(before))
	})

	It("gives a user outside the group, and the group on a slot without the skeleton, nothing", func(ctx SpecContext) {
		dir := publish(ctx, "gateway-closed", &s6.Owner{UID: memberID, GID: memberID})
		plain := publish(ctx, "gateway-plain", nil) // s6's default: supervise/ root 0700
		other := filepath.Join(sd, "s6rc-other")    // a non-gateway service of the image
		Expect(os.MkdirAll(other, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(other, "run"), []byte(sleepRun), 0o755)).To(Succeed())
		Expect(client.Rescan(ctx, sd)).To(Succeed())
		Expect(s6.WaitSupervised(ctx, other, waitLimit)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(read(g, other).Up()).To(BeTrue()) }).Should(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.Down(ctx, other)
			_ = client.Kill(ctx, other)
			// s6 applies the commands asynchronously: remove the dir once its supervisor has
			// finished writing the down state.
			Eventually(func(g Gomega) { g.Expect(read(g, other).Up()).To(BeFalse()) }).WithTimeout(waitLimit).Should(Succeed())
			Eventually(func() error { return os.RemoveAll(other) }).WithTimeout(waitLimit).Should(Succeed())
			Expect(client.RescanPrune(ctx, sd)).To(Succeed())
		})

		type try struct {
			id  int
			dir string
		}
		for _, t := range []try{{outsiderID, dir}, {memberID, plain}, {memberID, other}} {
			for _, args := range [][]string{{"s6-svstat", t.dir}, {"s6-svc", "-d", t.dir}, {"s6-svc", "-u", t.dir}, {"s6-svwait", "-u", "-t", "500", t.dir}} {
				out, rc := asUser(t.id, args[0], args[1:]...)
				Expect(rc).NotTo(Equal(0), "uid %d: %s succeeded: %s", t.id, strings.Join(args, " "), out)
			}
		}
		for _, d := range []string{dir, plain, other} {
			Expect(read(Default, d).Up()).To(BeTrue(), "%s was changed by an unprivileged user", d)
		}
	})
})

// dirListing lists a directory's entries with type, owner and mode, for before/after comparisons.
func dirListing(dir string) []string {
	ents, err := os.ReadDir(dir)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var out []string
	for _, e := range ents {
		le := lstatEntry(filepath.Join(dir, e.Name()))
		out = append(out, fmt.Sprintf("%s %v %d:%d", e.Name(), le.mode, le.uid, le.gid))
	}
	return out
}
