package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

// How status shows a report: the table and wide columns, AGE, the health verdict and the
// versioned JSON/YAML document. All pure: the report and the time come in, text goes out.

// statusDocument is `status -o json|yaml`: the report itself, with its fields at the top level,
// under a version and the health verdict.
type statusDocument struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Healthy is false exactly when the table form exits with exitUnhealthy.
	Healthy   bool            `json:"healthy"`
	Unhealthy []unhealthyItem `json:"unhealthy"`
	reconciler.StatusReport
}

// unhealthyItem is one reason a report is unhealthy.
type unhealthyItem struct {
	// Profile is the profile, or the skipped entry's name ("-" for the profiles root).
	Profile string `json:"profile"`
	// Reason is CrashLoopBackOff, Unsupervised, NoStatus, Error or Skipped.
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

func newStatusDocument(rep reconciler.StatusReport) statusDocument {
	bad := unhealthy(rep)
	return statusDocument{APIVersion: apiVersion, Kind: "StatusReport", Healthy: len(bad) == 0, Unhealthy: bad, StatusReport: rep}
}

// unhealthy lists what makes a report unhealthy: a profile in CrashLoopBackOff, Unsupervised or NoStatus,
// a profile with an error, and every problem entry (a skipped profile dir, an unlistable
// profiles root). Foreign scandir entries are reported but do not count: they are never touched.
func unhealthy(rep reconciler.StatusReport) []unhealthyItem {
	out := []unhealthyItem{}
	for _, p := range rep.Profiles {
		switch {
		case p.Phase == "CrashLoopBackOff":
			msg := ""
			if p.NextStart != "" {
				msg = fmt.Sprintf("%d failures, next start %s", p.CrashLoopFailures, p.NextStart)
			}
			out = append(out, unhealthyItem{p.Profile, p.Phase, msg})
		case p.Phase == "Unsupervised":
			out = append(out, unhealthyItem{p.Profile, p.Phase, "no s6-supervise runs the slot"})
		case p.NotServed:
			out = append(out, unhealthyItem{p.Profile, "NotServed", "folded into " + p.ServedBy + ", which does not list it in served_profiles"})
		case p.Phase == "NoStatus":
			out = append(out, unhealthyItem{p.Profile, p.Phase, "s6-supervise runs the slot but wrote no supervise/status (re-created after 5 s)"})
		case p.Error != "":
			out = append(out, unhealthyItem{p.Profile, "Error", p.Error})
		}
	}
	for _, p := range rep.Problems {
		out = append(out, unhealthyItem{p.Name, "Skipped", p.Error})
	}
	return out
}

// printStatusTable prints the report as a table (wide adds columns) with ages counted to now,
// then the skipped and foreign entries, one line each.
func printStatusTable(w io.Writer, rep reconciler.StatusReport, now time.Time, wide bool) error {
	var b bytes.Buffer
	if l := standbyText(rep.Lease); l != "" {
		fmt.Fprintln(&b, l)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if wide {
		fmt.Fprintln(tw, "PROFILE\tINTENT\tBOOT\tPRIOR\tDESIRED\tGATEWAY\tPHASE\tSTATE\tREADY\tPID\tPORT\tSERVED-BY\tDEATHS\tAGE\tACTIONS\tNOTE")
	} else {
		fmt.Fprintln(tw, "PROFILE\tINTENT\tPRIOR\tPHASE\tSTATE\tPID\tPORT\tAGE\tNOTE")
	}
	for _, p := range rep.Profiles {
		note := strings.Join(statusNotes(p, wide), "; ")
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
				p.Profile, p.Intent, p.BootIntent, p.PriorState, orDash(p.DesiredState), orDash(p.GatewayState),
				p.Phase, stateText(p), yesNo(p.SlotExists && p.Supervised, p.Ready), pidText(p.PID), portText(p.Port),
				orDash(p.ServedBy), p.Deaths,
				age(p.Since, now), orDash(strings.Join(p.Actions, ", ")), note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			p.Profile, p.Intent, p.PriorState, p.Phase, stateText(p), pidText(p.PID), portText(p.Port), age(p.Since, now), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(&b, "skipped %s: %s\n", p.Name, p.Error)
	}
	for _, f := range rep.Foreign {
		fmt.Fprintf(&b, "foreign %s: %s (never touched)\n", f.Name, f.Error)
	}
	for _, s := range rep.Staging {
		fmt.Fprintf(&b, "staging %s: left over from an interrupted create (the next pass removes it)\n", s)
	}
	if rep.Config != nil {
		fmt.Fprintln(&b, rep.Config.String())
	}
	return writeTrimmed(w, b.Bytes())
}

// writeTrimmed writes text with the padding tabwriter leaves at the end of lines removed.
func writeTrimmed(w io.Writer, text []byte) error {
	lines := bytes.SplitAfter(text, []byte("\n"))
	var out bytes.Buffer
	for _, l := range lines {
		nl := bytes.HasSuffix(l, []byte("\n"))
		out.Write(bytes.TrimRight(l, " \n"))
		if nl {
			out.WriteByte('\n')
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}

// stateText is what the supervisor is doing: "-" without a slot, "unsupervised", "up", or
// "down" with the last exit code or signal, and what s6 was last told when it differs.
func stateText(p reconciler.ProfileStatus) string {
	state := "-"
	switch {
	case !p.SlotExists:
	case !p.Supervised:
		state = "unsupervised"
	case p.Up:
		state = "up"
	default:
		state = "down"
		if p.Signal > 0 {
			state += " (signal " + strconv.Itoa(p.Signal) + ")"
		} else if p.ExitCode >= 0 {
			state += " (exit " + strconv.Itoa(p.ExitCode) + ")"
		}
	}
	if p.SlotExists && p.Supervised && p.WantUp != p.Up {
		if p.WantUp {
			state += ", want up"
		} else {
			state += ", want down"
		}
	}
	return state
}

// statusNotes are the NOTE column: pending correction, backoff, deaths (a column of its own in
// the wide table), drift, port sharing, warning and error.
func statusNotes(p reconciler.ProfileStatus, wide bool) []string {
	var notes []string
	if p.Pending != "" {
		notes = append(notes, p.Pending)
	}
	if p.NextStart != "" {
		notes = append(notes, fmt.Sprintf("failures=%d next start %s", p.CrashLoopFailures, p.NextStart))
	}
	if p.Deaths > 0 && !wide {
		notes = append(notes, fmt.Sprintf("deaths=%d", p.Deaths))
	}
	if len(p.Drift) > 0 {
		notes = append(notes, "drift: "+strings.Join(p.Drift, ","))
	}
	if len(p.PortConflict) > 0 {
		notes = append(notes, "port shared with "+strings.Join(p.PortConflict, ","))
	}
	if p.Warning != "" {
		notes = append(notes, p.Warning)
	}
	if p.Error != "" {
		notes = append(notes, p.Error)
	}
	return notes
}

// age is the time since the supervisor's last transition (since, RFC 3339), kubectl-style
// ("45s", "5m", "3h", "2d"); "-" when unknown.
func age(since string, now time.Time) string {
	if since == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339, since)
	if err != nil {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

func pidText(pid int) string {
	if pid > 0 {
		return strconv.Itoa(pid)
	}
	return "-"
}

// portText is the port, "-" for an orphaned slot (no profile, so no port).
func portText(port int) string {
	if port > 0 {
		return strconv.Itoa(port)
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// yesNo is "yes" or "no" when known, else "-".
func yesNo(known, v bool) string {
	switch {
	case !known:
		return "-"
	case v:
		return "yes"
	}
	return "no"
}

// standbyText is the line status and describe print for a standby controller, e.g.
// "Standby: owned by host gw-a pid 12 since 2026-12-02T00:00:00Z" ("" for an owner or none).
func standbyText(l *reconciler.LeaseStatus) string {
	if l == nil {
		return ""
	}
	msg, ok := strings.CutPrefix(l.Message(), "standby: ")
	if !ok {
		return ""
	}
	return "Standby: " + msg
}
