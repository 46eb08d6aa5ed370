package s6_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/pkg/s6"
)

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }

// withUmask runs f with a restrictive umask, to show that modes are set explicitly.
// The suite runs its specs serially, so changing the process umask is safe here.
func withUmask(mask int, f func()) {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	f()
}

type entry struct {
	mode     fs.FileMode // type bits + permission + setgid/sticky
	uid, gid int
}

func lstatEntry(p string) entry {
	fi, err := os.Lstat(p)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	st := fi.Sys().(*syscall.Stat_t)
	return entry{mode: fi.Mode(), uid: int(st.Uid), gid: int(st.Gid)}
}

// quietScandir returns a fresh directory shaped like a scandir that no s6-svscan watches. Specs
// that plant foreign entries or unfinished slots use it: s6-svscan scans asynchronously, so a
// rescan requested by an earlier spec could pick them up in the live scandir.
func quietScandir() string {
	quietSeq++
	d := filepath.Join(tmpRoot, fmt.Sprintf("quiet-%d", quietSeq))
	ExpectWithOffset(1, os.Mkdir(d, 0o755)).To(Succeed())
	return d
}

var quietSeq int

// entries lists the names in dir matching pattern (to spot leftovers).
func entries(dir, pattern string) []string {
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return m
}

// allEntries lists sd and its parent (a "../x" name would land there).
func allEntries(sd string) []string {
	var names []string
	for _, d := range []string{sd, filepath.Dir(sd)} {
		ents, err := os.ReadDir(d)
		Expect(err).NotTo(HaveOccurred())
		for _, e := range ents {
			names = append(names, d+"/"+e.Name())
		}
	}
	return names
}

var gatewayFiles = []s6.File{
	{Name: "type", Data: []byte("longrun\n"), Mode: 0o644},
	{Name: "run", Data: []byte(sleepRun), Mode: 0o755},
	{Name: "finish", Data: []byte("#!/bin/sh\nexit 0\n"), Mode: 0o755},
	{Name: "log/run", Data: []byte("#!/bin/sh\nexec cat >/dev/null\n"), Mode: 0o755},
}

var _ = Describe("CreateSlot", func() {
	It("publishes the files with their modes whatever the umask, and no down file", func() {
		sd := quietScandir()
		dir := filepath.Join(sd, "gateway-x")
		withUmask(0o077, func() {
			Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles, false, nil)).To(Succeed())
		})
		Expect(lstatEntry(dir).mode).To(Equal(fs.ModeDir | 0o755))
		Expect(lstatEntry(filepath.Join(dir, "log")).mode).To(Equal(fs.ModeDir | 0o755))
		for _, f := range gatewayFiles {
			p := filepath.Join(dir, f.Name)
			Expect(lstatEntry(p).mode).To(Equal(f.Mode), f.Name)
			Expect(os.ReadFile(p)).To(Equal(f.Data), f.Name)
		}
		Expect(filepath.Join(dir, "down")).NotTo(BeAnExistingFile())
		Expect(filepath.Join(dir, "supervise")).NotTo(BeAnExistingFile())
		Expect(filepath.Join(dir, "event")).NotTo(BeAnExistingFile())
		Expect(entries(sd, ".*")).To(BeEmpty())
	})

	// Where the umask leaves the modes alone, open and mkdir set them and no chmod follows; a
	// setgid scandir (whose bit new directories inherit) needs the chmod again.
	It("gives exact modes whether or not open and mkdir alone can", func() {
		for _, tc := range []struct {
			umask  int
			setgid bool
		}{{0o022, false}, {0o002, false}, {0o000, false}, {0o022, true}} {
			sd := quietScandir()
			if tc.setgid {
				Expect(os.Chmod(sd, 0o755|fs.ModeSetgid)).To(Succeed())
			}
			dir := filepath.Join(sd, "gateway-x")
			withUmask(tc.umask, func() {
				Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles, true, nil)).To(Succeed())
			})
			what := fmt.Sprintf("umask %03o, setgid scandir %t", tc.umask, tc.setgid)
			Expect(lstatEntry(dir).mode).To(Equal(fs.ModeDir|0o755), what)
			Expect(lstatEntry(filepath.Join(dir, "log")).mode).To(Equal(fs.ModeDir|0o755), what)
			Expect(lstatEntry(filepath.Join(dir, "down")).mode).To(Equal(fs.FileMode(0o644)), what)
			for _, f := range gatewayFiles {
				Expect(lstatEntry(filepath.Join(dir, f.Name)).mode).To(Equal(f.Mode), what+": "+f.Name)
			}
		}
	})

	It("adds an empty 0644 down file when asked", func() {
		sd := quietScandir()
		withUmask(0o077, func() {
			Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles[:2], true, nil)).To(Succeed())
		})
		down := filepath.Join(sd, "gateway-x", "down")
		Expect(lstatEntry(down).mode).To(Equal(fs.FileMode(0o644)))
		Expect(os.ReadFile(down)).To(BeEmpty())
	})

	It("refuses to replace an existing slot, even an empty directory", func() {
		sd := quietScandir()
		dir := filepath.Join(sd, "gateway-x")
		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles[:2], false, nil)).To(Succeed())
		other := []s6.File{runFile("#!/bin/sh\nexit 1\n")}
		err := s6.CreateSlot(sd, "gateway-x", other, false, nil)
		Expect(errors.Is(err, fs.ErrExist)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring(dir)))
		Expect(os.ReadFile(filepath.Join(dir, "run"))).To(Equal([]byte(sleepRun)))

		empty := filepath.Join(sd, "gateway-y")
		Expect(os.Mkdir(empty, 0o755)).To(Succeed())
		err = s6.CreateSlot(sd, "gateway-y", other, false, nil)
		Expect(errors.Is(err, fs.ErrExist)).To(BeTrue(), "%v", err)
		Expect(os.ReadDir(empty)).To(BeEmpty())

		link := filepath.Join(sd, "gateway-z")
		Expect(os.Symlink(filepath.Join(sd, "nowhere"), link)).To(Succeed())
		err = s6.CreateSlot(sd, "gateway-z", other, false, nil)
		Expect(errors.Is(err, fs.ErrExist)).To(BeTrue(), "%v", err)
		Expect(filepath.Join(sd, "nowhere")).NotTo(BeAnExistingFile())
		Expect(entries(sd, ".*")).To(BeEmpty())
	})

	It("replaces a planted staging symlink without touching its target", func() {
		sd := quietScandir()
		target := filepath.Join(sd, "..", filepath.Base(sd)+"-planted")
		Expect(os.MkdirAll(filepath.Join(target, "sub"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(target, "keep"), []byte("keep"), 0o600)).To(Succeed())
		staging := filepath.Join(sd, s6.StagingName("gateway-x"))
		Expect(staging).To(HaveSuffix("/.gateway-x.tmp"))
		Expect(os.Symlink(target, staging)).To(Succeed())

		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles, false, nil)).To(Succeed())
		Expect(lstatEntry(filepath.Join(sd, "gateway-x")).mode.IsDir()).To(BeTrue())
		Expect(filepath.Join(sd, "gateway-x", "log", "run")).To(BeARegularFile())
		Expect(os.ReadFile(filepath.Join(target, "keep"))).To(Equal([]byte("keep")))
		Expect(filepath.Join(target, "sub")).To(BeADirectory())
		Expect(filepath.Join(target, "run")).NotTo(BeAnExistingFile())
		Expect(staging).NotTo(BeAnExistingFile())
	})

	It("replaces a leftover staging directory", func() {
		sd := quietScandir()
		staging := filepath.Join(sd, ".gateway-x.tmp")
		Expect(os.MkdirAll(filepath.Join(staging, "log", "deep"), 0o700)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(staging, "run"), []byte("old"), 0o600)).To(Succeed())
		Expect(mkfifo(filepath.Join(staging, "log", "fifo"))).To(Succeed())

		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles[:2], false, nil)).To(Succeed())
		Expect(os.ReadFile(filepath.Join(sd, "gateway-x", "run"))).To(Equal([]byte(sleepRun)))
		Expect(filepath.Join(sd, "gateway-x", "log")).NotTo(BeAnExistingFile())
		Expect(staging).NotTo(BeAnExistingFile())
	})

	DescribeTable("leaves nothing behind when a file is bad",
		func(files []s6.File, want string) {
			sd := quietScandir()
			err := s6.CreateSlot(sd, "gateway-x", files, false, nil)
			Expect(err).To(MatchError(ContainSubstring(want)))
			Expect(os.ReadDir(sd)).To(BeEmpty())
		},
		Entry("dot-dot", []s6.File{runFile(sleepRun), {Name: "../evil", Mode: 0o644}}, "clean relative path"),
		Entry("absolute", []s6.File{{Name: "/etc/evil", Mode: 0o644}}, "clean relative path"),
		Entry("unclean", []s6.File{{Name: "log//run", Mode: 0o644}}, "clean relative path"),
		Entry("into supervise/", []s6.File{{Name: "supervise/control", Mode: 0o644}}, "belongs to s6"),
		Entry("twice the same", []s6.File{runFile(sleepRun), runFile(sleepRun)}, "file exists"),
	)

	DescribeTable("refuses slot names outside gateway-*",
		func(slot string) {
			sd := quietScandir()
			before := allEntries(sd)
			err := s6.CreateSlot(sd, slot, gatewayFiles[:2], false, nil)
			Expect(err).To(MatchError(ContainSubstring("slot name")))
			Expect(allEntries(sd)).To(Equal(before))
		},
		Entry("foreign", "s6rc-fdholder"),
		Entry("bare prefix", "gateway-"),
		Entry("slash", "gateway-a/b"),
		Entry("dot-dot", "../gateway-x"),
	)

	It("pre-creates the supervise skeleton root-owned for the owner's group, which s6-supervise keeps", func(ctx SpecContext) {
		owner := s6.Owner{UID: os.Getuid(), GID: os.Getgid()}
		if os.Getuid() == 0 {
			owner = s6.Owner{UID: 10000, GID: 10000}
		}
		name, dir := newSlot()
		withUmask(0o077, func() {
			Expect(s6.CreateSlot(scandir, name, gatewayFiles, false, &owner)).To(Succeed())
		})
		cleanupSlot(name, dir)

		// The s6-svperms model: everything stays the controller's, the group gets access.
		expectSkeleton := func(d string) {
			grouped := func(m fs.FileMode) entry { return entry{mode: m, uid: os.Getuid(), gid: owner.GID} }
			fifodir := fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o730
			ExpectWithOffset(1, lstatEntry(filepath.Join(d, "event"))).To(Equal(grouped(fifodir)), d+"/event")
			ExpectWithOffset(1, lstatEntry(filepath.Join(d, "supervise"))).To(Equal(grouped(fs.ModeDir|0o710)), d+"/supervise")
			ExpectWithOffset(1, lstatEntry(filepath.Join(d, "supervise", "control"))).To(Equal(grouped(fs.ModeNamedPipe|0o620)), d+"/supervise/control")
		}
		expectSkeleton(dir)
		expectSkeleton(filepath.Join(dir, "log"))
		// The service's own files stay root's (the owner must not be able to rewrite run).
		Expect(lstatEntry(filepath.Join(dir, "run")).uid).To(Equal(os.Getuid()))

		Expect(client.Rescan(ctx, scandir)).To(Succeed())
		Expect(s6.WaitSupervised(ctx, dir, waitLimit)).To(Succeed())
		Expect(s6.WaitSupervised(ctx, filepath.Join(dir, "log"), waitLimit)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		expectSkeleton(dir)
		expectSkeleton(filepath.Join(dir, "log"))
	})
})

var _ = Describe("WriteFile", func() {
	It("replaces a file through a temp file and a rename, with its mode, without a restart", func(ctx SpecContext) {
		_, dir := startSlot(ctx, gatewayFiles[:2], false)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		pid := read(Default, dir).Status.PID
		before := lstatInode(filepath.Join(dir, "run"))

		data := []byte("#!/bin/sh\nexec sleep 2000\n")
		withUmask(0o077, func() {
			Expect(s6.WriteFile(dir, s6.File{Name: "run", Data: data, Mode: 0o755})).To(Succeed())
		})
		Expect(os.ReadFile(filepath.Join(dir, "run"))).To(Equal(data))
		Expect(lstatEntry(filepath.Join(dir, "run")).mode).To(Equal(fs.FileMode(0o755)))
		Expect(lstatInode(filepath.Join(dir, "run"))).NotTo(Equal(before), "renamed over, not rewritten in place")
		Expect(entries(dir, ".run.tmp-*")).To(BeEmpty())
		Expect(read(Default, dir).Status.PID).To(Equal(pid))
	})

	It("writes log/run into log/, creating it when missing", func() {
		sd := quietScandir()
		dir := filepath.Join(sd, "gateway-x")
		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles[:2], false, nil)).To(Succeed())
		withUmask(0o077, func() {
			Expect(s6.WriteFile(dir, gatewayFiles[3])).To(Succeed())
		})
		Expect(lstatEntry(filepath.Join(dir, "log")).mode).To(Equal(fs.ModeDir | 0o755))
		Expect(lstatEntry(filepath.Join(dir, "log", "run")).mode).To(Equal(fs.FileMode(0o755)))
		Expect(os.ReadFile(filepath.Join(dir, "log", "run"))).To(Equal(gatewayFiles[3].Data))
		Expect(entries(filepath.Join(dir, "log"), ".*")).To(BeEmpty())
	})

	It("refuses a symlinked slot or log/ and leaves their targets alone", func() {
		sd := quietScandir()
		target, link := linkedTarget(sd, "gateway-link", false)
		Expect(s6.WriteFile(link, runFile(sleepRun))).To(MatchError(ContainSubstring("symlink")))
		Expect(os.ReadDir(target)).To(BeEmpty())

		dir := filepath.Join(sd, "gateway-x")
		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles[:2], false, nil)).To(Succeed())
		Expect(os.Symlink(target, filepath.Join(dir, "log"))).To(Succeed())
		Expect(s6.WriteFile(dir, gatewayFiles[3])).To(MatchError(ContainSubstring("symlink")))
		Expect(os.ReadDir(target)).To(BeEmpty())
	})

	DescribeTable("refuses bad targets",
		func(slotDir string, f s6.File, want string) {
			sd := quietScandir()
			before := allEntries(sd)
			Expect(s6.WriteFile(filepath.Join(sd, slotDir), f)).To(MatchError(ContainSubstring(want)))
			Expect(allEntries(sd)).To(Equal(before))
		},
		Entry("not a gateway-* dir", ".", runFile(sleepRun), "slot name"),
		Entry("dot-dot name", "gateway-x", s6.File{Name: "../gateway-y/run"}, "clean relative path"),
		Entry("into supervise/", "gateway-x", s6.File{Name: "supervise/status"}, "belongs to s6"),
		Entry("into event/", "gateway-x", s6.File{Name: "log/event/x"}, "belongs to s6"),
	)
})

func lstatInode(p string) uint64 {
	fi, err := os.Lstat(p)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return fi.Sys().(*syscall.Stat_t).Ino
}

var _ = Describe("SetDown", func() {
	It("creates and removes down idempotently", func() {
		sd := quietScandir()
		dir := filepath.Join(sd, "gateway-x")
		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles[:2], false, nil)).To(Succeed())
		down := filepath.Join(dir, "down")
		withUmask(0o077, func() {
			Expect(s6.SetDown(dir, true)).To(Succeed())
		})
		Expect(lstatEntry(down).mode).To(Equal(fs.FileMode(0o644)))
		Expect(s6.SetDown(dir, true)).To(Succeed())
		Expect(down).To(BeARegularFile())
		Expect(s6.SetDown(dir, false)).To(Succeed())
		Expect(down).NotTo(BeAnExistingFile())
		Expect(s6.SetDown(dir, false)).To(Succeed())
	})

	It("refuses a symlinked slot", func() {
		sd := quietScandir()
		target, link := linkedTarget(sd, "gateway-link", false)
		Expect(s6.SetDown(link, true)).To(MatchError(ContainSubstring("symlink")))
		Expect(filepath.Join(target, "down")).NotTo(BeAnExistingFile())
	})
})

// linkedTarget makes the directory sd/target (holding an empty file keep when keep is set) and
// the symlink sd/<link> to it, and returns both paths.
func linkedTarget(sd, link string, keep bool) (target, linkPath string) {
	target, linkPath = filepath.Join(sd, "target"), filepath.Join(sd, link)
	Expect(os.Mkdir(target, 0o755)).To(Succeed())
	if keep {
		Expect(os.WriteFile(filepath.Join(target, "keep"), nil, 0o644)).To(Succeed())
	}
	Expect(os.Symlink(target, linkPath)).To(Succeed())
	return target, linkPath
}

var _ = Describe("RemoveSlot and RemoveStaging", func() {
	It("never removes a foreign gateway-* entry or follows its link", func() {
		sd := quietScandir()
		target, link := linkedTarget(sd, "gateway-link", true)
		Expect(s6.RemoveSlot(sd, "gateway-link")).To(MatchError(ContainSubstring("not a directory")))
		Expect(lstatEntry(link).mode & fs.ModeSymlink).NotTo(BeZero())
		Expect(filepath.Join(target, "keep")).To(BeARegularFile())

		file := filepath.Join(sd, "gateway-file")
		Expect(os.WriteFile(file, nil, 0o644)).To(Succeed())
		Expect(s6.RemoveSlot(sd, "gateway-file")).To(HaveOccurred())
		Expect(file).To(BeARegularFile())
	})

	It("removes a slot directory and is a no-op for a missing one", func() {
		sd := quietScandir()
		Expect(s6.CreateSlot(sd, "gateway-x", gatewayFiles, true, nil)).To(Succeed())
		Expect(s6.RemoveSlot(sd, "gateway-x")).To(Succeed())
		Expect(os.ReadDir(sd)).To(BeEmpty())
		Expect(s6.RemoveSlot(sd, "gateway-x")).To(Succeed())
	})

	It("refuses names outside gateway-*", func() {
		sd := quietScandir()
		Expect(os.Mkdir(filepath.Join(sd, "s6rc-fdholder"), 0o755)).To(Succeed())
		Expect(os.Mkdir(filepath.Join(sd, ".gateway-x.tmp"), 0o755)).To(Succeed())
		before := allEntries(sd)
		for _, bad := range []string{"s6rc-fdholder", "gateway-", "gateway-a/../..", ".gateway-x.tmp", "../gateway-x", ".."} {
			Expect(s6.RemoveSlot(sd, bad)).To(MatchError(ContainSubstring("slot name")), bad)
		}
		Expect(allEntries(sd)).To(Equal(before))
	})

	It("removes staging entries, unlinking a symlink without following it", func() {
		sd := quietScandir()
		target, link := linkedTarget(sd, ".gateway-link.tmp", true)
		Expect(s6.RemoveStaging(sd, ".gateway-link.tmp")).To(Succeed())
		Expect(link).NotTo(BeAnExistingFile())
		Expect(filepath.Join(target, "keep")).To(BeARegularFile())

		dir := filepath.Join(sd, ".gateway-dir.tmp")
		Expect(os.MkdirAll(filepath.Join(dir, "log"), 0o755)).To(Succeed())
		Expect(s6.RemoveStaging(sd, ".gateway-dir.tmp")).To(Succeed())
		Expect(dir).NotTo(BeAnExistingFile())
		Expect(s6.RemoveStaging(sd, ".gateway-gone.tmp")).To(Succeed())

		Expect(os.Mkdir(filepath.Join(sd, ".s6-svscan"), 0o755)).To(Succeed())
		Expect(os.Mkdir(filepath.Join(sd, "gateway-x"), 0o755)).To(Succeed())
		before := allEntries(sd)
		for _, bad := range []string{"gateway-x", ".s6-svscan", ".gateway-.tmp", ".gateway-x", ".gateway-a/b.tmp", "../.gateway-x.tmp"} {
			Expect(s6.RemoveStaging(sd, bad)).To(MatchError(ContainSubstring("not a .gateway-*.tmp name")), bad)
		}
		Expect(allEntries(sd)).To(Equal(before))
	})
})
