// Command profile-controller keeps per-profile hermes gateway services converged in an s6
// scandir. main only wires: flags → config → logger → dependencies → the command. The commands
// are in cmd_*.go, their output in the files named for it, docs/cli.md describes them all.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// gcPercent is the GC target the controller runs with unless GOGC is set: the heap may grow
// by half its live size between collections, not by all of it. At 10,000 profiles, side by
// side, that cut peak RSS from 55–68 to 48–60 MiB (`run`) and from 50 to 43 MiB (`reconcile
// --once`), with no change in idle or per-event CPU beyond the noise (BENCHMARKS.md).
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command line args and returns the exit status (see exitError). Errors go to
// stderr, one line each, prefixed with the program name; a usage error adds where to find help.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, now: time.Now}
	root := newRootCommand(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
			fmt.Fprintln(stderr, "profile-controller: "+line)
		}
		if ee != nil && ee.usage && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}
