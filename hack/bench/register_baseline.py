#!/usr/bin/env python3
"""Baseline for the boot-pass benchmark: the per-profile file work of the Python seed.

The hermes seed (hermes_cli/container_boot.py, the cont-init.d reconcile that
profile-controller replaces) walks HERMES_HOME at container boot and, for every profile,
recreates its s6 slot with plain file operations. This script does the same work on a given
volume and scandir, so that the controller's boot pass can be timed against it on the same
tmpfs, as a whole process:

  * list HERMES_HOME/profiles/ (sorted), keep the directories that hold SOUL.md, and the root
    profile "default" (HERMES_HOME itself, which the controller serves too);
  * read gateway_state.json's gateway_state; only "running" starts;
  * unlink the stale gateway.pid and processes.json;
  * _register_service: mkdir <scandir>/gateway-<name>, write `type`, write `run` and chmod it
    0755, mkdir log/, write `log/run` and chmod it 0755, then create the `down` marker (or
    remove it for a profile that starts);
  * append one line per profile to HERMES_HOME/logs/container-boot.log and print it.

Like the seed it does not fsync, does not stage and rename, and never runs s6-svscanctl (the
driver adds one `s6-svscanctl -a` where the benchmark says so).

Usage: register_baseline.py --hermes-home DIR --scandir DIR [--run-file F --log-run-file F]

--run-file and --log-run-file replace the seed-shaped scripts with the given ones (for a run on
a real s6-svscan, where /command/with-contenv does not exist on Debian); in them @PROFILE_DIR@,
@LOG_DIR@ and @NAME@ become the shell-quoted profile dir, log dir and profile name.
"""

import argparse
import json
import os
import shlex
import sys
import time

STALE_FILES = ("gateway.pid", "processes.json")


def render_run(name, profile_dir, home):
    """A run script of the seed's shape: with-contenv, venv, privilege drop, exec."""
    profile = "" if name == "default" else "-p " + shlex.quote(name) + " "
    return (
        "#!/command/with-contenv sh\n"
        "set -e\n"
        "cd /opt/data\n"
        ". /opt/hermes/.venv/bin/activate\n"
        "exec s6-setuidgid hermes hermes " + profile + "gateway run --replace\n"
    )


def render_log_run(name, profile_dir, home):
    """A log/run script of the seed's shape: HERMES_HOME resolved at run time, s6-log."""
    return (
        "#!/command/with-contenv sh\n"
        ': "${HERMES_HOME:=/opt/data}"\n'
        'log_dir="$HERMES_HOME/logs/gateways/' + name + '"\n'
        'mkdir -p "$log_dir"\n'
        'exec s6-setuidgid hermes s6-log n10 s1000000 T "$log_dir"\n'
    )


def from_file(text):
    """A renderer for a script given on the command line."""
    def render(name, profile_dir, home):
        log_dir = os.path.join(home, "logs", "gateways", name)
        return (text.replace("@PROFILE_DIR@", shlex.quote(profile_dir))
                .replace("@LOG_DIR@", shlex.quote(log_dir))
                .replace("@NAME@", shlex.quote(name)))
    return render


def prior_state(profile_dir):
    path = os.path.join(profile_dir, "gateway_state.json")
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value.get("gateway_state") if isinstance(value, dict) else None


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def register_service(scandir, name, start, run_text, log_run_text):
    """The seed's _register_service: mkdir, type, run + chmod, log/run + chmod, down marker."""
    slot = os.path.join(scandir, "gateway-" + name)
    os.makedirs(slot, exist_ok=True)
    write_text(os.path.join(slot, "type"), "longrun\n")
    run = os.path.join(slot, "run")
    write_text(run, run_text)
    os.chmod(run, 0o755)
    log_dir = os.path.join(slot, "log")
    os.makedirs(log_dir, exist_ok=True)
    log_run = os.path.join(log_dir, "run")
    write_text(log_run, log_run_text)
    os.chmod(log_run, 0o755)
    down = os.path.join(slot, "down")
    if start:
        try:
            os.unlink(down)
        except FileNotFoundError:
            pass
    else:
        open(down, "a").close()


def profiles(home):
    yield "default", home
    root = os.path.join(home, "profiles")
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "SOUL.md")):
            yield name, path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hermes-home", required=True)
    ap.add_argument("--scandir", required=True)
    ap.add_argument("--run-file")
    ap.add_argument("--log-run-file")
    args = ap.parse_args()
    run_r, log_r = render_run, render_log_run
    if args.run_file:
        with open(args.run_file, encoding="utf-8") as f:
            run_r = from_file(f.read())
    if args.log_run_file:
        with open(args.log_run_file, encoding="utf-8") as f:
            log_r = from_file(f.read())
    lines = []
    for name, path in profiles(args.hermes_home):
        state = prior_state(path)
        start = state == "running"
        for stale in STALE_FILES:
            try:
                os.unlink(os.path.join(path, stale))
            except FileNotFoundError:
                pass
        register_service(args.scandir, name, start,
                         run_r(name, path, args.hermes_home), log_r(name, path, args.hermes_home))
        lines.append("profile=%s prior_state=%s action=%s" % (name, state, "started" if start else "registered"))
    log_dir = os.path.join(args.hermes_home, "logs")
    os.makedirs(log_dir, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with open(os.path.join(log_dir, "container-boot.log"), "a", encoding="utf-8") as f:
        for line in lines:
            f.write(stamp + " " + line + "\n")
    out = sys.stdout
    for line in lines:
        out.write("reconcile: " + line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
