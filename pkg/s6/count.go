package s6

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// CountServices counts the services s6-svscan would supervise in scandir, loggers included,
// as its -C/-c limit counts them: every entry not starting with '.', plus one for each that
// has a log/ subdirectory. Symlinked entries are never followed and count as two (a service
// and a possible logger), so the count errs on the safe side.
func CountServices(scandir string) (int, error) {
	d, err := safefs.OpenDir(scandir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.ReadDirNames()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if strings.HasPrefix(name, ".") {
			continue
		}
		st, err := d.Lstat(name)
		if err != nil {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			n += 2
		case unix.S_IFDIR:
			n++
			if sub, err := d.OpenDir(name); err == nil {
				if ls, err := sub.Lstat("log"); err == nil && ls.Mode&unix.S_IFMT == unix.S_IFDIR {
					n++
				}
				sub.Close()
			}
		}
	}
	return n, nil
}
