package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/reconciler"
)

var statusFormats = []string{"table", "wide", "json", "yaml"}

func newStatusCommand(a *app) *cobra.Command {
	var (
		output   string
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [PROFILE...]",
		Short: "Show desired vs observed state per profile",
		Long: `Show desired vs observed state for every profile (or only the PROFILEs named): intent,
prior state, phase, what the supervisor is doing, pid, port, AGE (time since the supervisor's
last transition), pending corrections and drift; then skipped profile dirs, foreign scandir
entries and staging leftovers. Changes nothing and takes no lock.

-o wide adds the boot-pass intent, the state file's values, readiness, deaths and the actions
the next pass would take. -o json and -o yaml print the whole report as one document with
"apiVersion": "profile-controller/v1", "kind": "StatusReport", and the verdict in "healthy"
and "unhealthy".

Unhealthy means: a profile in CrashLoopBackOff, Unsupervised or NoStatus, a profile with an error, or a
skipped profile dir (problem entry). The table forms then exit 3; the json and yaml forms exit
0 and carry the verdict in the document, for scripts (jq -e .healthy).

--watch prints again whenever the report changes, polling every --interval, until SIGINT or
SIGTERM (then exit 0).`,
		Example: `  profile-controller status
  profile-controller status coder -o wide
  profile-controller status -o json | jq '.profiles[] | select(.phase != "Running") | .profile'
  profile-controller status --watch --interval 1s
  profile-controller status >/dev/null || echo "something is unhealthy (exit $?)"`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: a.completeProfiles(0),
		RunE: func(cmd *cobra.Command, names []string) error {
			if err := checkFormat(cmd, output, statusFormats...); err != nil {
				return err
			}
			if interval <= 0 {
				return usageErr("status: --interval must be positive, got %s", interval)
			}
			d, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer d.flush()
			fetch := func(ctx context.Context) (reconciler.StatusReport, []string, error) {
				rep, err := d.ctl.Status(ctx)
				if err != nil {
					return rep, nil, err
				}
				rep, missing := selectProfiles(rep, names)
				return rep, missing, nil
			}
			if watch {
				return a.watch(cmd.Context(), fetch, output, interval)
			}
			return a.statusOnce(cmd.Context(), fetch, output)
		},
	}
	outputFlag(cmd, &output, statusFormats...)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print again on every change until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch polls")
	return cmd
}

// statusFetch reads the report, narrowed to the profiles asked for, and lists the names that
// are neither a profile nor a slot.
type statusFetch func(context.Context) (reconciler.StatusReport, []string, error)

// statusOnce prints the report; exit status 3 for an unhealthy one, in every output form. Names
// not found are an error, after whatever was found is shown.
func (a *app) statusOnce(ctx context.Context, fetch statusFetch, output string) error {
	rep, missing, err := fetch(ctx)
	if err != nil {
		return err
	}
	if len(missing) == 0 || len(rep.Profiles)+len(rep.Problems)+len(rep.Foreign) > 0 {
		if err := a.showStatus(rep, output, true); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return notFound(missing)
	}
	if len(unhealthy(rep)) > 0 {
		return &exitError{code: exitUnhealthy}
	}
	return nil
}

// watch prints the report on every change until SIGINT or SIGTERM. The profiles asked for must
// exist when it starts; one removed later drops out of the output.
func (a *app) watch(ctx context.Context, fetch statusFetch, output string, interval time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	started := false
	return watchStatus(ctx, ticker.C, func(ctx context.Context) (reconciler.StatusReport, error) {
		rep, missing, err := fetch(ctx)
		if err == nil && !started && len(missing) > 0 {
			return rep, notFound(missing)
		}
		started = true
		return rep, err
	}, func(rep reconciler.StatusReport, first bool) error {
		return a.showStatus(rep, output, first)
	})
}

func notFound(names []string) error {
	return fmt.Errorf("status: no profile or slot named %s", strings.Join(names, ", "))
}

// showStatus prints one report in format; later ones of a watch are set apart (a blank line
// between tables, "---" between YAML documents, JSON documents one after the other).
func (a *app) showStatus(rep reconciler.StatusReport, format string, first bool) error {
	w := a.stdout
	switch format {
	case "json", "yaml":
		if !first && format == "yaml" {
			fmt.Fprintln(w, "---")
		}
		return writeDocument(w, format, newStatusDocument(rep))
	}
	if !first {
		fmt.Fprintln(w)
	}
	return printStatusTable(w, rep, a.now(), format == "wide")
}

// watchStatus shows the report, then fetches it again on every tick and shows it when it
// changed, until ctx is done (then it returns nil). A fetch error ends the watch.
func watchStatus(ctx context.Context, ticks <-chan time.Time, fetch func(context.Context) (reconciler.StatusReport, error),
	show func(rep reconciler.StatusReport, first bool) error) error {
	var last []byte
	for {
		rep, err := fetch(ctx)
		if err != nil {
			return err
		}
		key, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		if !bytes.Equal(key, last) {
			if err := show(rep, last == nil); err != nil {
				return err
			}
			last = key
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// selectProfiles narrows rep to the named profiles (all of them when names is empty), with the
// problem, foreign and staging entries that belong to them, and lists the names it did not find.
func selectProfiles(rep reconciler.StatusReport, names []string) (reconciler.StatusReport, []string) {
	if len(names) == 0 {
		return rep, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := reconciler.StatusReport{Problems: []reconciler.ProblemStatus{}, Foreign: []reconciler.ProblemStatus{}, Staging: []string{}, Config: rep.Config}
	found := map[string]bool{}
	for _, p := range rep.Profiles {
		if want[p.Profile] {
			out.Profiles = append(out.Profiles, p)
			found[p.Profile] = true
		}
	}
	for _, p := range rep.Problems {
		if want[p.Name] {
			out.Problems = append(out.Problems, p)
			found[p.Name] = true
		}
	}
	for _, f := range rep.Foreign {
		if n, ok := strings.CutPrefix(f.Name, desired.SlotPrefix); ok && want[n] {
			out.Foreign = append(out.Foreign, f)
			found[n] = true
		}
	}
	for _, s := range rep.Staging {
		if n, ok := strings.CutPrefix(strings.TrimSuffix(s, ".tmp"), "."+desired.SlotPrefix); ok && want[n] {
			out.Staging = append(out.Staging, s)
		}
	}
	var missing []string
	seen := map[string]bool{}
	for _, n := range names {
		if !found[n] && !seen[n] {
			missing = append(missing, n)
		}
		seen[n] = true
	}
	return out, missing
}
