package s6

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds each exec of an s6 binary when Client.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// waitDelay is how long a timed-out command may keep its stderr pipe open after being killed.
const waitDelay = time.Second

// maxStderr caps the stderr kept from one command.
const maxStderr = 4 << 10

// Client runs s6 binaries from BinDir by absolute path, each bounded by Timeout.
//
// BinDir is "/command" under s6-overlay and "/usr/bin" with Debian's s6; it is never looked up
// in PATH. A zero Timeout means DefaultTimeout. No shell is involved. Each command runs in its
// own process group, and the whole group is killed when the timeout or ctx runs out, so a hung
// s6-svc (or the s6-svlisten1 it execs) never outlives the call. A Client is safe for
// concurrent use once its fields are set.
type Client struct {
	BinDir  string
	Timeout time.Duration
}

// CmdError is the error of a failed s6 command. Its message has the shape
// "s6-svc -u /run/service/gateway-x: exit status 111: <trimmed stderr>".
type CmdError struct {
	// Path is the absolute path of the binary that was run.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// ExitCode is the exit status, or -1 when the command did not exit by itself (it could not
	// be started, it was killed, or it timed out).
	ExitCode int
	// Stderr is the command's standard error, trimmed and capped at 4 KiB.
	Stderr string
	// Err is the underlying error: an *exec.ExitError, a start error naming Path, or one
	// wrapping context.DeadlineExceeded / context.Canceled.
	Err error
}

// Error implements error.
func (e *CmdError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path) // the full path: which binary hung or failed matters to an operator
	for _, a := range e.Args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *CmdError) Unwrap() error { return e.Err }

// Up runs s6-svc -u on dir: the supervisor wants the service up and starts it. It does not wait
// for the process. Errors are *CmdError.
func (c *Client) Up(ctx context.Context, dir string) error {
	return c.run(ctx, "s6-svc", "-u", pathArg(dir))
}

// Down runs s6-svc -d on dir: the supervisor wants the service down and sends it the
// down-signal. It does not wait for the process to die. Errors are *CmdError.
func (c *Client) Down(ctx context.Context, dir string) error {
	return c.run(ctx, "s6-svc", "-d", pathArg(dir))
}

// Kill runs s6-svc -k on dir: the supervisor sends SIGKILL to the service. It does not wait.
// Errors are *CmdError.
func (c *Client) Kill(ctx context.Context, dir string) error {
	return c.run(ctx, "s6-svc", "-k", pathArg(dir))
}

// Rescan runs s6-svscanctl -a on scandir: s6-svscan scans at once and starts supervisors for new
// service directories (it never does so by itself). Errors are *CmdError.
func (c *Client) Rescan(ctx context.Context, scandir string) error {
	return c.run(ctx, "s6-svscanctl", "-a", pathArg(scandir))
}

// RescanPrune runs s6-svscanctl -an on scandir: a scan, then the supervisors of service
// directories that have disappeared are told to stop their service and exit. It does not wait
// for them. Errors are *CmdError.
func (c *Client) RescanPrune(ctx context.Context, scandir string) error {
	return c.run(ctx, "s6-svscanctl", "-an", pathArg(scandir))
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// pathArg keeps a relative path that starts with "-" from being read as options.
func pathArg(p string) string {
	if strings.HasPrefix(p, "-") {
		return "./" + p
	}
	return p
}

func (c *Client) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(c.BinDir, name)
	timeout := c.timeout()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(cctx, path, args...)
	stderr := &cappedBuffer{max: maxStderr}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group leader is not reaped before Wait returns, so its pgid cannot be reused yet.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	if err == nil {
		return nil
	}
	ce := &CmdError{Path: path, Args: args, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	switch {
	case ctx.Err() != nil:
		ce.Err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	case cctx.Err() != nil:
		ce.Err = fmt.Errorf("timed out after %s: %w", timeout, context.DeadlineExceeded)
	}
	return ce
}

// cappedBuffer keeps the first max bytes written to it and discards the rest.
type cappedBuffer struct {
	b   []byte
	max int
}

func (w *cappedBuffer) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		if len(p) > room {
			w.b = append(w.b, p[:room]...)
		} else {
			w.b = append(w.b, p...)
		}
	}
	return len(p), nil
}

func (w *cappedBuffer) String() string { return string(w.b) }
