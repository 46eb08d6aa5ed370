package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/reconciler"
)

// description is `describe PROFILE`: one profile's status with its conditions, the state of
// each slot file and the recent events.
type description struct {
	APIVersion string                   `json:"apiVersion"`
	Kind       string                   `json:"kind"`
	Status     reconciler.ProfileStatus `json:"status"`
	Conditions []condition              `json:"conditions"`
	Files      []fileState              `json:"files"`
	Events     []event                  `json:"events"`
	// Lease is the running controller's role (omitted: lease off or no controller runs).
	Lease *reconciler.LeaseStatus `json:"lease,omitempty"`
}

// condition is a kubectl-style condition: Status is True, False or Unknown.
type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// fileState is one slot file: "in sync", "drifted", "missing", "not created" and the like.
type fileState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// event is something that happened to the profile, oldest first.
type event struct {
	Time    string `json:"time"`
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// profileEvents are the controller's recent events of the profile (kept with its memory in the
// runtime dir), newest last.
func profileEvents(ps reconciler.ProfileStatus) []event {
	out := []event{}
	for _, e := range ps.Events {
		out = append(out, event{Time: e.Time.UTC().Format(time.RFC3339), Type: e.Type, Reason: e.Reason, Message: e.Message})
	}
	return out
}

func newDescribeCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe PROFILE",
		Short: "Show one profile in detail: conditions, files, pending corrections, events",
		Long: `Show one profile (or orphaned slot) in detail: its desired and observed state, kubectl-style
conditions (SlotRegistered, Supervised, Running, WantedUp, Ready, FilesInSync, Healthy), each
slot file rendered vs on disk (in sync, drifted, missing), what the next pass would do, the
pending correction and crash-loop backoff, and the recent events. Changes nothing.

-o json and -o yaml print it as one document with "apiVersion": "profile-controller/v1" and
"kind": "ProfileDescription". Exit status 1 when there is no such profile or slot.`,
		Example: `  profile-controller describe coder
  profile-controller describe default -o yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeProfiles(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, output, "text", "json", "yaml"); err != nil {
				return err
			}
			d, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer d.flush()
			rep, err := d.ctl.Status(cmd.Context())
			if err != nil {
				return err
			}
			i := slices.IndexFunc(rep.Profiles, func(p reconciler.ProfileStatus) bool { return p.Profile == args[0] })
			if i < 0 {
				return fmt.Errorf("describe: no profile or slot named %s", args[0])
			}
			present, err := slotFiles(d.cfg.Scandir, args[0])
			if err != nil {
				return err
			}
			desc := describe(rep.Profiles[i], present)
			desc.Lease = rep.Lease
			if output != "text" {
				return writeDocument(a.stdout, output, desc)
			}
			if l := standbyText(rep.Lease); l != "" {
				fmt.Fprintln(a.stdout, l)
			}
			return printDescription(a.stdout, desc, a.now())
		},
	}
	outputFlag(cmd, &output, "text", "json", "yaml")
	return cmd
}

// slotFiles reports which managed files the profile's slot holds in a usable form (nil: no slot).
func slotFiles(scandir, profile string) (map[string]bool, error) {
	slot, err := observed.ReadSlot(scandir, profile)
	if err != nil && !errors.Is(err, observed.ErrForeign) {
		return nil, err
	}
	if slot == nil {
		return nil, nil
	}
	present := map[string]bool{}
	for _, name := range observed.ManagedFiles {
		if f := slot.File(name); f != nil && f.Present() {
			present[name] = true
		}
	}
	return present, nil
}

// describe builds the description of ps; present says which slot files exist (nil: unknown).
func describe(ps reconciler.ProfileStatus, present map[string]bool) description {
	return description{
		APIVersion: apiVersion, Kind: "ProfileDescription", Status: ps,
		Conditions: conditions(ps), Files: files(ps, present), Events: profileEvents(ps),
	}
}

func conditions(ps reconciler.ProfileStatus) []condition {
	b := func(v bool) string {
		if v {
			return "True"
		}
		return "False"
	}
	var out []condition
	reg := condition{Type: "SlotRegistered", Status: b(ps.SlotExists)}
	if !ps.SlotExists {
		reg.Reason = "NoSlot"
		if slices.ContainsFunc(ps.Actions, func(a string) bool { return strings.HasPrefix(a, "create ") }) {
			reg.Message = "the next pass creates it"
		}
	}
	out = append(out, reg)

	sup := condition{Type: "Supervised", Status: "Unknown"}
	if ps.SlotExists {
		sup.Status = b(ps.Supervised)
		if !ps.Supervised {
			sup.Reason, sup.Message = "NoSupervisor", "no s6-supervise runs the slot (is s6-svscan running on the scandir?)"
		}
	}
	out = append(out, sup)

	running := condition{Type: "Running", Status: "Unknown"}
	wanted := condition{Type: "WantedUp", Status: "Unknown"}
	ready := condition{Type: "Ready", Status: "Unknown"}
	if ps.SlotExists && ps.Supervised {
		running.Status, wanted.Status = b(ps.Up), b(ps.WantUp)
		switch {
		case ps.Up:
			running.Message = "pid " + strconv.Itoa(ps.PID)
			ready.Status = b(ps.Ready)
		case ps.Signal > 0:
			running.Reason, running.Message = "Killed", "signal "+strconv.Itoa(ps.Signal)
		case ps.ExitCode >= 0:
			running.Reason, running.Message = "Exited", "exit code "+strconv.Itoa(ps.ExitCode)
		default:
			running.Reason = "Down"
		}
	}
	out = append(out, running, wanted, ready)

	// Stale: s6 says up, but the gateway's heartbeat is older than heartbeatTimeout (report
	// only; shown once the gateway has written a heartbeat).
	if ps.Heartbeat != "" {
		out = append(out, condition{Type: "Stale", Status: b(ps.Stale), Message: "heartbeat " + ps.Heartbeat})
	}

	// Served: the root gateway lists a folded profile in served_profiles (topology multiplex).
	if ps.Folded {
		served := condition{Type: "Served", Status: b(!ps.NotServed)}
		if ps.NotServed {
			served.Reason, served.Message = "NotServed", "gateway-default has been up for the settle period without listing it in served_profiles"
		}
		out = append(out, served)
	}

	sync := condition{Type: "FilesInSync", Status: "Unknown"}
	if ps.SlotExists {
		sync.Status = b(len(ps.Drift) == 0)
		if len(ps.Drift) > 0 {
			sync.Reason, sync.Message = "Drifted", strings.Join(ps.Drift, ", ")+" (the next pass rewrites them, without a restart)"
		}
	}
	out = append(out, sync)

	health := condition{Type: "Healthy", Status: "True"}
	if bad := unhealthy(reconciler.StatusReport{Profiles: []reconciler.ProfileStatus{ps}}); len(bad) > 0 {
		health.Status, health.Reason, health.Message = "False", bad[0].Reason, bad[0].Message
	}
	return append(out, health)
}

func files(ps reconciler.ProfileStatus, present map[string]bool) []fileState {
	var out []fileState
	for _, name := range observed.ManagedFiles {
		state := "in sync"
		switch {
		case !ps.SlotExists:
			state = "not created"
		case slices.Contains(ps.Drift, name) && present != nil && !present[name]:
			state = "missing"
		case slices.Contains(ps.Drift, name):
			state = "drifted"
		}
		out = append(out, fileState{name, state})
	}
	down := "not created"
	switch {
	case ps.SlotExists && ps.NormallyUp:
		down = "absent (normally up)"
	case ps.SlotExists:
		down = "present (normally down)"
	}
	return append(out, fileState{"down", down})
}

// printDescription prints desc as text; ages and the backoff's remaining time count to now.
func printDescription(out io.Writer, desc description, now time.Time) error {
	var buf bytes.Buffer
	if err := writeDescription(&buf, desc, now); err != nil {
		return err
	}
	return writeTrimmed(out, buf.Bytes())
}

func writeDescription(w io.Writer, desc description, now time.Time) error {
	ps := desc.Status
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	field("Name", ps.Profile)
	field("Slot", ps.Slot)
	if ps.ServedBy != "" {
		field("Served by", servedByText(ps))
	}
	field("Port", portText(ps.Port)+portNote(ps))
	intent := ps.Intent + " (boot pass: " + ps.BootIntent + ")"
	if ps.EffectiveIntent != "" {
		intent += "; effective " + ps.EffectiveIntent + " with the profiles folded into it (topology multiplex)"
	}
	field("Intent", intent)
	field("Prior state", ps.PriorState)
	field("State file", fmt.Sprintf("desired_state=%s gateway_state=%s", orDash(ps.DesiredState), orDash(ps.GatewayState)))
	field("Phase", ps.Phase)
	state := stateText(ps)
	if ps.PID > 0 {
		state += ", pid " + strconv.Itoa(ps.PID)
	}
	if ps.Since != "" {
		state += ", for " + age(ps.Since, now) + " (since " + ps.Since + ")"
	}
	field("State", state)
	field("Deaths", strconv.Itoa(ps.Deaths))
	if ps.Warning != "" {
		field("Warning", ps.Warning)
	}
	if ps.Error != "" {
		field("Error", ps.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Conditions:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE")
	for _, c := range desc.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Type, c.Status, orDash(c.Reason), orDash(c.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Files (rendered vs slot):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range desc.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, f.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Pending:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	next := "nothing to do"
	if len(ps.Actions) > 0 {
		next = strings.Join(ps.Actions, "; ")
	}
	fmt.Fprintf(tw, "  Next pass:\t%s\n", next)
	fmt.Fprintf(tw, "  Correction:\t%s\n", orNone(ps.Pending))
	backoff := ""
	if ps.NextStart != "" {
		backoff = fmt.Sprintf("%d failures, next start %s", ps.CrashLoopFailures, ps.NextStart)
		if t, err := time.Parse(time.RFC3339, ps.NextStart); err == nil && t.After(now) {
			backoff += " (in " + duration.HumanDuration(t.Sub(now)) + ")"
		}
	}
	fmt.Fprintf(tw, "  Crash-loop backoff:\t%s\n", orNone(backoff))
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(desc.Events) == 0 {
		_, err := fmt.Fprintln(w, "Events:  <none>")
		return err
	}
	fmt.Fprintln(w, "Events:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tREASON\tAGE\tMESSAGE")
	for _, e := range desc.Events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Type, e.Reason, age(e.Time, now), e.Message)
	}
	return tw.Flush()
}

func portNote(ps reconciler.ProfileStatus) string {
	if len(ps.PortConflict) == 0 {
		return ""
	}
	return " (shared with " + strings.Join(ps.PortConflict, ", ") + ")"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// servedByText is the slot that serves a profile, and why when it is not the profile's own.
func servedByText(ps reconciler.ProfileStatus) string {
	switch {
	case ps.Folded && ps.ServedBy != ps.Slot:
		return ps.ServedBy + " (folded into the root: topology multiplex)"
	case ps.Folded:
		return ps.ServedBy + " (its own slot: the root does not serve it, multiplex.fallback ownSlot)"
	}
	return ps.ServedBy
}
