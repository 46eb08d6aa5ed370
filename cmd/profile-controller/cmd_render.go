package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/spf13/cobra"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

func newRenderCommand(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "render PROFILE [--file NAME]",
		Short: "Print the slot files the controller would write for a profile",
		Long: `Print the files the controller renders for PROFILE's slot (type, run, finish, log/run) from
the configured templates, each under a "==> <slot>/<file> (mode 0755) <==" header. --file prints
one file's bytes only, with no header (pipe it into sh -n). The down marker is state, not
rendered content: describe shows it. Reads the volume, changes nothing.`,
		Example: `  profile-controller --config config.yaml render coder
  profile-controller --config config.yaml render coder --file run | sh -n`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeProfiles(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer d.flush()
			p, err := loadProfile(d, args[0])
			if err != nil {
				return err
			}
			rendered, err := d.renderer.Render(p)
			if err != nil {
				return err
			}
			if file != "" {
				for _, f := range rendered {
					if f.Name == file {
						_, err := a.stdout.Write(f.Data)
						return err
					}
				}
				return usageErr("render: no file %q (%s)", file, strings.Join(observed.ManagedFiles, ", "))
			}
			return printRendered(a.stdout, p.Slot(), rendered)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "print only this `file` (type, run, finish, log/run), without a header")
	_ = cmd.RegisterFlagCompletionFunc("file", cobra.FixedCompletions(observed.ManagedFiles, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newDiffCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "diff PROFILE",
		Short: "Show how the profile's slot files differ from what the controller would write",
		Long: `Print a unified diff from each file in PROFILE's slot (---, what is there) to the rendered
file (+++, what the next pass writes); a file missing from the slot is diffed against /dev/null,
and a changed mode is a "# mode" line. Prints nothing when the slot is in sync. Changes nothing.

Exit status, like diff(1): 0 no differences, 1 differences, 2 trouble (no such profile, a
foreign slot entry, an unreadable slot, a usage or configuration error).`,
		Example: `  profile-controller --config config.yaml diff coder
  profile-controller diff coder >/dev/null || profile-controller reconcile --once`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeProfiles(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trouble := func(err error) error { return &exitError{code: exitUsage, err: err} }
			d, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer d.flush()
			p, err := loadProfile(d, args[0])
			if err != nil {
				return trouble(err)
			}
			rendered, err := d.renderer.Render(p)
			if err != nil {
				return trouble(err)
			}
			slot, err := observed.ReadSlot(d.cfg.Scandir, p.Name)
			if err != nil {
				return trouble(err)
			}
			if slot != nil && slot.Files == nil && slot.Err != nil {
				return trouble(fmt.Errorf("read slot %s: %w", slot.Dir, slot.Err))
			}
			text := slotDiff(d.cfg.Scandir, p.Slot(), rendered, slot)
			if text == "" {
				return nil
			}
			if _, err := io.WriteString(a.stdout, text); err != nil {
				return trouble(err)
			}
			return &exitError{code: exitFailure}
		},
	}
}

// loadProfile reads one profile from the volume; a missing or invalid one is an error.
func loadProfile(d *deps, name string) (desired.Profile, error) {
	p, present, err := desired.Loader{Home: d.cfg.HermesHome}.LoadProfile(name)
	switch {
	case err != nil:
		return p, fmt.Errorf("profile %s: %w", name, err)
	case !present:
		return p, fmt.Errorf("no profile named %s under %s", name, d.cfg.HermesHome)
	}
	return p, nil
}

// printRendered prints each file under a header naming it and its mode; a file that does not
// end in a newline gets one, so the next header starts a line.
func printRendered(w io.Writer, slot string, files []s6.File) error {
	var b bytes.Buffer
	for i, f := range files {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "==> %s/%s (mode %04o) <==\n", slot, f.Name, f.Mode.Perm())
		b.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// slotDiff is the unified diff from the slot's files (nil slot: none) to the rendered ones, ""
// when they agree in bytes and mode. Labels are the slot file's path and "rendered/<slot>/<file>".
func slotDiff(scandir, slotName string, rendered []s6.File, slot *observed.Slot) string {
	var b strings.Builder
	for _, f := range rendered {
		var have []byte
		var mode uint32
		ok := false
		if slot != nil {
			if mf := slot.File(f.Name); mf != nil && mf.Present() {
				have, mode, ok = mf.Data, mf.Perm(), true
			}
		}
		oldLabel := scandir + "/" + slotName + "/" + f.Name
		newLabel := "rendered/" + slotName + "/" + f.Name
		want := uint32(f.Mode.Perm())
		switch {
		case !ok:
			fmt.Fprintf(&b, "# %s/%s: missing or unusable in the slot; rendered mode %04o\n", slotName, f.Name, want)
			b.WriteString(udiff.Unified("/dev/null", newLabel, "", string(f.Data)))
			continue
		case mode != want:
			fmt.Fprintf(&b, "# %s/%s: mode %04o in the slot, %04o rendered\n", slotName, f.Name, mode, want)
		}
		if !bytes.Equal(have, f.Data) {
			b.WriteString(udiff.Unified(oldLabel, newLabel, string(have), string(f.Data)))
		}
	}
	return b.String()
}
