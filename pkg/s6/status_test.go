package s6_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/pkg/s6"
)

// fixtureDir holds real status files and what s6-svstat printed for them (see the README of
// the project's reference captures, from which this tree was copied).
const fixtureDir = "testdata/s6-status"

// taiOffset is 2^62 + 37: a TAI64 label minus this is Unix seconds (after 2017).
const taiOffset = uint64(1)<<62 + 37

// fixtureDownFile lists the states captured with a ./down file: normallyup is not in the status
// file, s6-svstat stats ./down, so the test has to know it (README, index table).
var fixtureDownFile = map[string]bool{"down-exitcode": true, "never-started": true}

type fixture struct {
	version, state string
	status         []byte
	svstatO        string // s6-svstat -o up,wantedup,normallyup,ready,paused,pid,exitcode,signal,signum,updownsince,readysince
	svstat         string // s6-svstat (default format)
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*", "*.status"))
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	for _, p := range paths {
		base := strings.TrimSuffix(p, ".status")
		f := fixture{version: filepath.Base(filepath.Dir(p)), state: filepath.Base(base)}
		f.status = mustRead(t, p)
		f.svstatO = strings.TrimSuffix(string(mustRead(t, base+".svstat-o.txt")), "\n")
		f.svstat = strings.TrimSuffix(string(mustRead(t, base+".svstat.txt")), "\n")
		fs = append(fs, f)
	}
	// 3 versions × 9 states: a glob that finds nothing must not pass silently.
	if len(fs) != 27 {
		t.Fatalf("found %d status fixtures under %s, want 27", len(fs), fixtureDir)
	}
	return fs
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// atLeast reports whether dotted version v is >= want (e.g. "2.13.2.0" >= "2.13.2").
func atLeast(v, want string) bool {
	a, b := strings.Split(v, "."), strings.Split(want, ".")
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}

// tai64n renders a time the way s6-svstat prints updownsince/readysince.
func tai64n(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(t.Unix())+taiOffset)
	binary.BigEndian.PutUint32(b[8:12], uint32(t.Nanosecond()))
	return fmt.Sprintf("@%x", b[:])
}

// svstatO derives what `s6-svstat -o up,wantedup,normallyup,ready,paused,pid,exitcode,signal,
// signum,updownsince,readysince` of s6 version prints, from the decoded status alone.
func svstatO(st s6.Status, version string, normallyUp bool) string {
	marker := atLeast(version, "2.13.2") // 2.13.2+ overloads paused+pid 0 as "not started yet"
	paused := st.Paused
	if marker {
		paused = st.Paused && st.PID != 0
	}
	pid := -1
	if st.Up() {
		pid = st.PID
	}
	code, ok := st.ExitCode()
	if !ok && !marker && st.NotStarted() {
		code = int(st.WStat >> 8) // 2.11 has no marker: the raw bits are just "exited"
	}
	sigName, sigNum := "NA", -1
	if n, ok := st.Signal(); ok {
		sigName, sigNum = unix.SignalName(syscall.Signal(n)), n
	}
	return fmt.Sprintf("%t %t %t %t %t %d %d %s %d %s %s",
		st.Up(), st.WantUp, normallyUp, st.Up() && st.Ready, paused, pid, code, sigName, sigNum,
		tai64n(st.Stamp), tai64n(st.ReadyStamp))
}

// svstatLine derives the default s6-svstat line with every "N seconds" written as "N seconds".
func svstatLine(st s6.Status, version string, normallyUp bool) string {
	marker := atLeast(version, "2.13.2")
	notStarted := marker && st.NotStarted()
	var b strings.Builder
	switch {
	case st.Up():
		fmt.Fprintf(&b, "up (pid %d", st.PID)
		if atLeast(version, "2.13") {
			pgid := st.PGID
			if pgid == 0 {
				pgid = st.PID // 35-byte files (2.14+): pgid == pid
			}
			fmt.Fprintf(&b, " pgid %d", pgid)
		}
		b.WriteString(") ")
	case notStarted:
		b.WriteString("down (not started yet) ")
	default:
		if n, ok := st.Signal(); ok {
			fmt.Fprintf(&b, "down (signal %s) ", unix.SignalName(syscall.Signal(n)))
		} else {
			fmt.Fprintf(&b, "down (exitcode %d) ", st.WStat>>8)
		}
	}
	if !notStarted {
		b.WriteString("N seconds")
	}
	up := st.Up()
	if up && !normallyUp {
		b.WriteString(", normally down")
	}
	if !up && normallyUp {
		b.WriteString(", normally up")
	}
	if up && st.Paused {
		b.WriteString(", paused")
	}
	if !up && st.WantUp {
		b.WriteString(", want up")
	}
	if up && !st.WantUp {
		b.WriteString(", want down")
	}
	if st.Ready && !notStarted {
		b.WriteString(", ready N seconds")
	}
	return b.String()
}

var secondsRE = regexp.MustCompile(`\b\d+ seconds`)

func TestParseStatusFixtures(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.version+"/"+f.state, func(t *testing.T) {
			st, err := s6.ParseStatus(f.status)
			if err != nil {
				t.Fatalf("ParseStatus: %v", err)
			}
			normallyUp := !fixtureDownFile[f.state]
			if got := svstatO(st, f.version, normallyUp); got != f.svstatO {
				t.Errorf("-o fields:\n got  %s\n want %s", got, f.svstatO)
			}
			want := secondsRE.ReplaceAllString(f.svstat, "N seconds")
			if got := svstatLine(st, f.version, normallyUp); got != want {
				t.Errorf("default line:\n got  %q\n want %q", got, want)
			}
			// The default line's first word and pid, read back from s6's own output.
			fields := strings.Fields(f.svstat)
			if wantUp := fields[0] == "up"; st.Up() != wantUp {
				t.Errorf("Up() = %t, s6-svstat says %q", st.Up(), fields[0])
			}
			if st.Up() {
				pid, err := strconv.Atoi(strings.TrimSuffix(fields[2], ")"))
				if err != nil || pid != st.PID {
					t.Errorf("PID = %d, s6-svstat says %q", st.PID, fields[2])
				}
			}
			if len(f.status) == 43 && st.PGID != st.PID {
				t.Errorf("PGID = %d, want the pid %d (as in every 2.13 fixture)", st.PGID, st.PID)
			}
			if len(f.status) == 35 && st.PGID != 0 {
				t.Errorf("PGID = %d from a 35-byte file, want 0", st.PGID)
			}
		})
	}
}

func TestParseStatusWorkedExample(t *testing.T) {
	// README §2.5: 2.15.1.0/up.status starts with 40 00 00 00 6b 02 27 3e 34 8f 4e c3.
	st, err := s6.ParseStatus(mustRead(t, filepath.Join(fixtureDir, "2.15.1.0", "up.status")))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 21, 23, 19, 53, 881807043, time.UTC)
	if !st.Stamp.Equal(want) {
		t.Errorf("Stamp = %s, want %s", st.Stamp.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if st.PID != 19148 || !st.WantUp || st.Ready || st.Paused || st.Finishing {
		t.Errorf("decoded %+v, want pid 19148, wantup only", st)
	}
}

func TestParseStatusBadSize(t *testing.T) {
	for _, n := range []int{0, 1, 34, 36, 42, 44, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			st, err := s6.ParseStatus(make([]byte, n))
			if err == nil {
				t.Fatalf("ParseStatus(%d bytes) = %+v, want an error", n, st)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(n)+" bytes") {
				t.Errorf("error %q does not say the size", err)
			}
		})
	}
}

func TestParseStatusPIDRange(t *testing.T) {
	cases := []struct {
		name string
		size int
		off  int // where the big value goes
	}{
		{"35-byte pid", 35, 24},
		{"43-byte pid", 43, 24},
		{"43-byte pgid", 43, 32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := make([]byte, c.size)
			binary.BigEndian.PutUint64(b[c.off:], ^uint64(0)) // would be pid -1 as an int
			if st, err := s6.ParseStatus(b); err == nil {
				t.Fatalf("ParseStatus = %+v, want an out-of-range error", st)
			}
			binary.BigEndian.PutUint64(b[c.off:], 1<<31-1)
			if _, err := s6.ParseStatus(b); err != nil {
				t.Fatalf("ParseStatus(max pid_t) = %v, want no error", err)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*", "*.status"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed fixtures under %s: %v", fixtureDir, err)
	}
	for _, p := range paths {
		f.Add(mustRead(f, p))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 34))
	f.Add(make([]byte, 44))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := s6.ParseStatus(b)
		if len(b) != 35 && len(b) != 43 {
			if err == nil {
				t.Fatalf("%d bytes parsed without error: %+v", len(b), st)
			}
			return
		}
		if err != nil {
			// Only an out-of-range pid or pgid may fail a well-sized file.
			pid := binary.BigEndian.Uint64(b[24:32])
			pgid := uint64(0)
			if len(b) == 43 {
				pgid = binary.BigEndian.Uint64(b[32:40])
			}
			if pid <= 1<<31-1 && pgid <= 1<<31-1 {
				t.Fatalf("%d bytes, pid %d, pgid %d: unexpected error %v", len(b), pid, pgid, err)
			}
			return
		}
		if st.PID < 0 || st.PGID < 0 {
			t.Fatalf("negative pid/pgid: %+v", st)
		}
		if st.Up() && st.PID == 0 {
			t.Fatalf("Up() with pid 0: %+v", st)
		}
		if st.Up() && st.NotStarted() {
			t.Fatalf("both Up() and NotStarted(): %+v", st)
		}
		code, exited := st.ExitCode()
		sig, signalled := st.Signal()
		if exited && signalled {
			t.Fatalf("both exited (%d) and signalled (%d): %+v", code, sig, st)
		}
		if exited && (code < 0 || code > 255 || st.Up()) {
			t.Fatalf("exit code %d while up=%t: %+v", code, st.Up(), st)
		}
		if signalled && (sig < 1 || sig > 127 || st.Up()) {
			t.Fatalf("signal %d while up=%t: %+v", sig, st.Up(), st)
		}
		if !exited && code != -1 || !signalled && sig != -1 {
			t.Fatalf("not-ok results must be -1: code %d sig %d", code, sig)
		}
		// Round trip: every field is recoverable, so re-encoding gives the same bytes, except
		// the unused flag bits 4-7 and nanosecond fields >= 1e9 (time.Unix normalises them).
		if ns1, ns2 := binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint32(b[20:24]); ns1 < 1e9 && ns2 < 1e9 {
			want := append([]byte(nil), b...)
			want[len(want)-1] &= 0x0f
			if got := encodeStatus(st, len(b)); string(got) != string(want) {
				t.Fatalf("round trip:\n in  %x\n out %x", want, got)
			}
		}
	})
}

// encodeStatus is the inverse of ParseStatus for the test's round trip.
func encodeStatus(st s6.Status, size int) []byte {
	b := make([]byte, size)
	put := func(off int, t time.Time) {
		binary.BigEndian.PutUint64(b[off:], uint64(t.Unix())+taiOffset)
		binary.BigEndian.PutUint32(b[off+8:], uint32(t.Nanosecond()))
	}
	put(0, st.Stamp)
	put(12, st.ReadyStamp)
	binary.BigEndian.PutUint64(b[24:], uint64(st.PID))
	wo := 32
	if size == 43 {
		binary.BigEndian.PutUint64(b[32:], uint64(st.PGID))
		wo = 40
	}
	binary.BigEndian.PutUint16(b[wo:], st.WStat)
	var flags byte
	for i, set := range []bool{st.Paused, st.Finishing, st.WantUp, st.Ready} {
		if set {
			flags |= 1 << i
		}
	}
	b[wo+2] = flags
	return b
}
