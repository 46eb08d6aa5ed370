package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/hermes/profile-controller/pkg/reconciler"
)

// printStatus prints desired vs observed per profile as a table, JSON or YAML.
func printStatus(ctx context.Context, ctl *reconciler.Controller, format string, w io.Writer) error {
	rep, err := ctl.Status(ctx)
	if err != nil {
		return err
	}
	switch format {
	case "json":
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "table":
	default:
		return usageErr("status: unknown output format %q (table, json, yaml)", format)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tINTENT\tPRIOR\tPHASE\tSTATE\tPID\tPORT\tNOTE")
	for _, p := range rep.Profiles {
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
		if p.SlotExists && p.WantUp != p.Up {
			if p.WantUp {
				state += ", want up"
			} else {
				state += ", want down"
			}
		}
		pid := "-"
		if p.PID > 0 {
			pid = strconv.Itoa(p.PID)
		}
		var notes []string
		if p.Pending != "" {
			notes = append(notes, p.Pending)
		}
		if p.NextStart != "" {
			notes = append(notes, fmt.Sprintf("failures=%d next start %s", p.CrashLoopFailures, p.NextStart))
		}
		if p.Deaths > 0 {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Profile, p.Intent, p.PriorState, p.Phase, state, pid, p.Port, strings.Join(notes, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "skipped %s: %s\n", p.Name, p.Error)
	}
	for _, f := range rep.Foreign {
		fmt.Fprintf(w, "foreign %s: %s (never touched)\n", f.Name, f.Error)
	}
	return nil
}
