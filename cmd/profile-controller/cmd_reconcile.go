package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

func newReconcileCommand(a *app) *cobra.Command {
	var once, boot, dryRun bool
	cmd := &cobra.Command{
		Use:   "reconcile --once [--boot] [--dry-run]",
		Short: "Run one full pass, then exit (the cont-init.d boot pass)",
		Long: `Run one full pass over every profile, then exit. Prints one line per profile on stdout:

  reconcile: profile=<p> prior_state=<s> action=<a>

(and one per unregistered slot); skipped profiles, warnings and errors go to stderr, one line each.
--boot forces the boot column of the intent table, the stale-file cleanup and the boot log even
when the boot marker says the boot pass is done. --dry-run changes nothing and prints exactly
what plan prints.

Exit status: 0 when every action succeeded, 1 when some failed (the next pass retries them) or
SIGTERM/SIGINT cut the pass short (a cut-short boot pass is not recorded: the next start redoes
it), 2 on a usage or configuration error. The s6-overlay cont-init script depends on these.

The pass holds the HERMES_HOME lease (lease: on). When another controller holds it, or with
role: standby, it prints one line and exits 0 registering nothing:

  standby: HERMES_HOME lease owned by <holder> since <t>; nothing registered`,
		Example: `  # cont-init.d/02-profile-controller
  profile-controller --config /etc/profile-controller/config.yaml reconcile --once --boot

  # The same as: profile-controller plan --boot
  profile-controller --config config.yaml reconcile --once --boot --dry-run`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !once {
				return usageErr("reconcile needs --once (the loop is `run`)")
			}
			if dryRun {
				return a.plan(cmd, boot)
			}
			d, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer d.flush()
			// SIGTERM (docker stop during cont-init) ends the pass cleanly: what was applied
			// stays, the boot pass is not recorded, and the exit status is 1.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return reconcileOnce(ctx, d.ctl, boot, a.stdout, a.stderr)
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "run one full pass and exit (required)")
	cmd.Flags().BoolVar(&boot, "boot", false, "force the boot pass: boot column, stale-file cleanup, boot log")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "change nothing; print the plan (the same as plan)")
	return cmd
}

func newPlanCommand(a *app) *cobra.Command {
	var boot bool
	cmd := &cobra.Command{
		Use:   "plan [--boot]",
		Short: "Print the actions the next pass would take; change nothing",
		Long: `Print the actions the next pass would take, one per line, and the corrections that are
waiting (settle window, crash-loop backoff). Changes nothing and takes no lock, so it is safe
next to a running controller. The boot pass is planned when it is pending, or with --boot.

  plan: <action>                  e.g. plan: create gateway-coder (up)
  plan: pending <slot>: <why>     e.g. plan: pending gateway-alpha: Settling: start at <time>
  plan: clean-staging <entry>
  plan: nothing to do

Skipped profiles are warnings on stderr. reconcile --once --dry-run prints exactly the same.`,
		Example: `  profile-controller --config /etc/profile-controller/config.yaml plan
  profile-controller plan --boot`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.plan(cmd, boot) },
	}
	cmd.Flags().BoolVar(&boot, "boot", false, "plan the boot pass even when it is done")
	return cmd
}

// plan prints what a pass would do now (the boot pass when boot is set or pending).
func (a *app) plan(cmd *cobra.Command, boot bool) error {
	d, err := a.setup(cmd)
	if err != nil {
		return err
	}
	defer d.flush()
	var lines, warnings []string
	if boot && !d.ctl.BootPending() {
		// Status plans the boot pass only while it is pending; a forced one is a dry-run pass.
		rep := d.ctl.Pass(cmd.Context(), true, true)
		if rep.Err != nil {
			return rep.Err
		}
		lines = planFromPass(rep)
		for _, p := range rep.Problems {
			warnings = append(warnings, fmt.Sprintf("skipped %s: %v", problemLabel(p.Name), p.Err))
		}
	} else {
		rep, err := d.ctl.Status(cmd.Context())
		if err != nil {
			return err
		}
		lines = planFromStatus(rep)
		for _, p := range rep.Problems {
			warnings = append(warnings, fmt.Sprintf("skipped %s: %s", p.Name, p.Error))
		}
	}
	for _, w := range warnings {
		fmt.Fprintln(a.stderr, "profile-controller: warning: "+oneLine(w))
	}
	_, err = fmt.Fprint(a.stdout, strings.Join(lines, "\n")+"\n")
	return err
}

// planFromStatus lists the plan in a status report: each profile's actions and pending
// correction, in profile order, then the staging leftovers.
func planFromStatus(rep reconciler.StatusReport) []string {
	var lines []string
	for _, p := range rep.Profiles {
		for _, act := range p.Actions {
			lines = append(lines, "plan: "+act)
		}
		if p.Pending != "" {
			lines = append(lines, fmt.Sprintf("plan: pending %s: %s", p.Slot, p.Pending))
		}
	}
	for _, s := range rep.Staging {
		lines = append(lines, "plan: clean-staging "+s)
	}
	return orNothing(lines)
}

// planFromPass lists the actions of a dry-run pass.
func planFromPass(rep reconciler.Report) []string {
	var lines []string
	for _, act := range rep.Actions {
		lines = append(lines, "plan: "+act.String())
	}
	return orNothing(lines)
}

func orNothing(lines []string) []string {
	if len(lines) == 0 {
		return []string{"plan: nothing to do"}
	}
	return lines
}

func problemLabel(name string) string {
	if name == "" {
		return "-"
	}
	return name
}

// reconcileOnce runs one pass under the lock. stdout: one line per served profile (and per
// unregistered slot); stderr: what was skipped, warnings and errors, one line each.
func reconcileOnce(ctx context.Context, ctl *reconciler.Controller, boot bool, stdout, stderr io.Writer) error {
	unlock, err := ctl.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	// The volume lease, for the pass's duration: a standby registers nothing and succeeds. The
	// identity is written only before the first action: a pass with nothing to do writes nothing.
	role, err := ctl.TakeLeaseQuietly()
	if err != nil {
		return err
	}
	defer ctl.ReleaseLease()
	if role.Role == reconciler.RoleStandby {
		fmt.Fprintln(stdout, standbyLine(role))
		return nil
	}
	rep := ctl.Pass(ctx, boot || ctl.BootPending(), false)
	// One write(2) per 64 KiB of lines, not per line. When both streams go to one file (a
	// terminal, 2>&1), each stderr line flushes stdout before it and itself after, so that the
	// lines keep their order there.
	// A failed print leaves nothing useful to do, as for fmt.Fprint: Flush errors are dropped.
	out, errs := bufio.NewWriterSize(stdout, 64<<10), bufio.NewWriterSize(stderr, 64<<10)
	defer func() { _, _ = out.Flush(), errs.Flush() }()
	shared := sameFile(stdout, stderr)
	warnf := func(format string, a ...any) {
		if shared {
			_ = out.Flush()
		}
		fmt.Fprintf(errs, format, a...)
		if shared {
			_ = errs.Flush()
		}
	}
	for _, l := range rep.Lines {
		switch {
		case l.Action == "skipped":
			warnf("profile-controller: warning: skipped %s\n", oneLine(l.Err.Error()))
			continue
		case l.Err != nil:
			warnf("profile-controller: error: profile %s: %s\n", l.Profile, oneLine(l.Err.Error()))
		}
		fmt.Fprintln(out, l.String())
	}
	for _, w := range rep.Warnings {
		warnf("profile-controller: warning: %s\n", oneLine(w.Error()))
	}
	if rep.Err != nil {
		// Print the whole error: not every part of it belongs to a line above (the boot marker,
		// an interrupted pass).
		warnf("profile-controller: error: %s\n", oneLine(rep.Err.Error()))
		return errors.New("the pass did not complete (see the errors above); the next pass retries")
	}
	return nil
}

// sameFile reports whether a and b are, or may be, one file (then the order of their lines
// matters): two *os.File that are the same or cannot be stat'ed. Other writers are apart.
func sameFile(a, b io.Writer) bool {
	fa, ok := a.(*os.File)
	fb, ok2 := b.(*os.File)
	if !ok || !ok2 {
		return false
	}
	sa, err := fa.Stat()
	sb, err2 := fb.Stat()
	return err != nil || err2 != nil || os.SameFile(sa, sb)
}

// oneLine keeps a message on one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// standbyLine is what reconcile --once prints when it does not hold the volume lease.
func standbyLine(role reconciler.LeaseStatus) string {
	if role.Owner != "" {
		return "standby: HERMES_HOME lease owned by " + role.Owner + " since " + role.Since + "; nothing registered"
	}
	return "standby: " + role.Reason + "; nothing registered"
}
