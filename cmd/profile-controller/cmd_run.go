package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newRunCommand(a *app) *cobra.Command {
	var notifyFD int
	cmd := &cobra.Command{
		Use:   "run [--notify-fd N]",
		Short: "Run the always-on reconcile loop until SIGTERM or SIGINT",
		Long: `Run the always-on loop: the boot pass when no cont-init.d script did it (no boot marker in
the runtime dir), then level-triggered reconciles fed by inotify and a periodic resync, until
SIGTERM or SIGINT; then exit 0 within 2 s. Logs JSON by default.

--notify-fd N writes one newline to file descriptor N, and closes it, once the boot pass is done
and the loop is watching: s6's readiness notification (put N in the service's notification-fd).

Only one controller may act on a runtime dir: a second run fails (exit 1) naming the pid that
holds the lock, before it opens the metrics port. With metricsAddr set, /metrics, /healthz and
/readyz are served.

With lease: on (the default) it acts only while it holds the HERMES_HOME lease; otherwise (or
with role: standby) it stands by: it registers nothing, /readyz answers 503 "standby: owned by
<holder> since <t>", and it takes over with a boot pass when the lease is freed.

SIGHUP, and a change of the --config file, reload the configuration through the same path as
at startup (file, environment, the flags given at startup, defaults, validation). A valid one
is applied without a restart: slot files are rewritten in place, no gateway restarts. One that
is invalid, or that changes hermesHome, scandir, s6BinDir, runtimeDir, metricsAddr, logFormat,
role, lease, topology or multiplex,
is refused with a one-line error and the running configuration stays in use. status shows the
configuration generation in use.`,
		Example: `  profile-controller --config /etc/profile-controller/config.yaml run
  profile-controller --config /etc/profile-controller/config.yaml run --notify-fd 3
  profile-controller --config config.yaml run -v 1 --log-format console`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			notify, err := notifier(notifyFD)
			if err != nil {
				return err
			}
			// SIGHUP reloads the configuration: caught before anything could send it.
			hup, stopHup := reloadSignals()
			defer stopHup()
			d, err := a.setupWith(cmd, notify)
			if err != nil {
				return err
			}
			defer d.flush()
			rl, err := newReloader(&a.flags, cmd.Flags().Changed, d)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if os.Getenv("GOMAXPROCS") == "" {
				// The loop waits on the kernel, not on CPU: a second P buys only threads
				// spinning for work between events (about 20 % of the CPU per event here).
				runtime.GOMAXPROCS(1)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			// The lock first: a second controller must learn who holds the runtime dir, not
			// that the metrics port is taken (by that same controller). Run reuses the lock.
			unlock, err := d.ctl.Lock()
			if err != nil {
				return err
			}
			defer unlock()
			d.log.Info("Starting", "version", readVersionInfo().Version, "hermesHome", d.cfg.HermesHome, "scandir", d.cfg.Scandir)
			if d.cfg.MetricsAddr != "" {
				if _, err := serveMetrics(ctx, d.cfg.MetricsAddr, d.reg, d.ctl, d.log); err != nil {
					return err
				}
			}
			reloadCtx, stopReload := context.WithCancel(ctx)
			reloaded := make(chan struct{})
			go func() {
				defer close(reloaded)
				rl.run(reloadCtx, hup)
			}()
			defer func() {
				stopReload()
				<-reloaded
			}()
			return d.ctl.Run(ctx)
		},
	}
	cmd.Flags().IntVar(&notifyFD, "notify-fd", 0, "write a newline to this `fd` once ready (s6 notification-fd; 0: off)")
	return cmd
}

// notifier returns the readiness hook for --notify-fd fd (nil for 0). The descriptor must be
// open and not one of stdin, stdout and stderr.
func notifier(fd int) (func(), error) {
	switch {
	case fd == 0:
		return nil, nil
	case fd < 3:
		return nil, usageErr("run: --notify-fd %d: use a descriptor of its own (3 or more), not stdin, stdout or stderr", fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, usageErr("run: --notify-fd %d: the descriptor is not open (%v); is notification-fd set?", fd, err)
	}
	f := os.NewFile(uintptr(fd), "notification-fd")
	return func() {
		_, _ = fmt.Fprintln(f)
		_ = f.Close()
	}, nil
}
