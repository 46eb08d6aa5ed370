package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hermes/profile-controller/pkg/desired"
)

// Exit statuses (docs/cli.md). The s6-overlay cont-init script depends on 0, 1 and 2.
const (
	exitOK = 0
	// exitFailure: the command failed (and, for diff, the files differ).
	exitFailure = 1
	// exitUsage: a usage or configuration error; for diff, any trouble.
	exitUsage = 2
	// exitUnhealthy: status found a profile unhealthy (see unhealthy).
	exitUnhealthy = 3
)

// exitError carries an exit status. A nil err exits with code without a message (the output
// already said it); usage adds a pointer to the command's --help.
type exitError struct {
	code  int
	err   error
	usage bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr is a usage error: exit status 2 and a pointer to --help.
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// app is what every command shares: the global flags and where output goes.
type app struct {
	stdout, stderr io.Writer
	flags          globalFlags
	now            func() time.Time
}

// globalFlags are the persistent flags, accepted before and after the command.
type globalFlags struct {
	config                                    string
	home, scandir, binDir, runtimeDir, gwUser string
	resync, settle                            time.Duration
	verbosity                                 int
	logFormat                                 string
	role                                      string
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.config, "config", "", "YAML config `file` (default: none; environment, flags and defaults only)")
	fs.StringVar(&g.home, "hermes-home", "", "HERMES_HOME `dir` (default /opt/data)")
	fs.StringVar(&g.scandir, "scandir", "", "s6 scan `dir` (default /run/service)")
	fs.StringVar(&g.binDir, "s6-bin-dir", "", "`dir` of the s6 binaries (default /command, else /usr/bin)")
	fs.StringVar(&g.runtimeDir, "runtime-dir", "", "tmpfs `dir` for the boot marker and the lock (default /run/profile-controller)")
	fs.StringVar(&g.gwUser, "gateway-user", "", "gateway `user` (default: none, no privilege drop)")
	fs.DurationVar(&g.resync, "resync-period", 0, "periodic resync `duration` (default 10s)")
	fs.DurationVar(&g.settle, "settle-period", 0, "settle window `duration` (default 15s)")
	fs.IntVarP(&g.verbosity, "v", "v", 0, "log verbosity `level`: 0 changes and errors, 1 decisions, 4 per-pass detail")
	fs.StringVar(&g.logFormat, "log-format", "", "log `format`: json or console (default json for run, console otherwise)")
	fs.StringVar(&g.role, "role", "", "`role` for a shared volume: auto (act while holding the lease) or standby (never act) (default auto)")
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "profile-controller",
		Short: "Keep per-profile hermes gateway s6 services in line with the profiles on the volume",
		Long: `profile-controller turns the profiles on the persistent volume (HERMES_HOME: the root
profile plus every profiles/<name>/ that holds a SOUL.md) into s6 longrun services, one slot
<scandir>/gateway-<name>/ per profile, and keeps them in line.

Global flags go before or after the command and override the config file and the environment.
Exit status: 0 ok, 1 failure, 2 usage or configuration error, 3 (status) a profile is unhealthy.
The full reference is docs/cli.md.`,
		Example: `  # The boot pass, from cont-init.d
  profile-controller --config /etc/profile-controller/config.yaml reconcile --once --boot

  # What is going on, and what would the next pass do?
  profile-controller status
  profile-controller plan`,
		Version:       readVersionInfo().Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownCommand,
		// SuggestionsFor leaves the distance to the caller; 2 is cobra's own default.
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Usage()
			return usageErr("no command given")
		},
	}
	// The root runs only to say that a command is missing: its usage line would be noise.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "Usage:{{if .Runnable}}", "Usage:{{if and .Runnable .HasParent}}", 1))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate(readVersionInfo().text())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err, usage: true}
	})
	a.flags.register(root.PersistentFlags())
	root.AddCommand(
		newRunCommand(a), newReconcileCommand(a), newPlanCommand(a),
		newStatusCommand(a), newDescribeCommand(a), newRenderCommand(a), newDiffCommand(a),
		newVersionCommand(a),
	)
	return root
}

// unknownCommand refuses arguments to the root command: they name a command that does not exist.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageErr("unknown command %q%s", args[0], hint)
}

// usageArgs turns the errors of a cobra argument check into usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", cmd.Name(), err), usage: true}
		}
		return nil
	}
}

// outputFlag registers -o/--output with the given formats, the first being the default.
func outputFlag(cmd *cobra.Command, p *string, formats ...string) {
	cmd.Flags().StringVarP(p, "output", "o", formats[0], "output `format`: "+strings.Join(formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// checkFormat returns a usage error unless format is one of formats.
func checkFormat(cmd *cobra.Command, format string, formats ...string) error {
	for _, f := range formats {
		if f == format {
			return nil
		}
	}
	return usageErr("%s: unknown output format %q (%s)", cmd.Name(), format, strings.Join(formats, ", "))
}

// completeProfiles completes profile names from the volume the configuration names; limit is
// how many names the command takes (0: any number).
func (a *app) completeProfiles(limit int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if limit > 0 && len(args) >= limit {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cfg, err := a.config(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		taken := map[string]bool{}
		for _, arg := range args {
			taken[arg] = true
		}
		var names []string
		for _, p := range (desired.Loader{Home: cfg.HermesHome}).Load().Profiles {
			if !taken[p.Name] && strings.HasPrefix(p.Name, toComplete) {
				names = append(names, p.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
