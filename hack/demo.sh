#!/usr/bin/env bash
# A self-contained demo against a real s6-svscan, with test/fakegateway standing in for hermes:
# three named profiles and the root profile in a temporary HERMES_HOME, a boot pass, then the
# runtime loop reacting to an operator's `desired_state` edit. Everything lives under one
# mktemp dir and is torn down on exit (processes stopped, dir removed). Exits non-zero when a
# step fails. s6 is installed with apt-get when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=hack/lib.sh
source hack/lib.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# sq quotes $1 for a POSIX shell; yq quotes it for YAML.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
yq() { printf "'%s'" "${1//\'/\'\'}"; }

step "Checking for s6"
ensure_s6
s6bin=$(dirname "$(command -v s6-svscan)")
echo "s6 binaries: $s6bin"

step "Building bin/profile-controller and bin/fakegateway"
go build -o bin/profile-controller ./cmd/profile-controller
go build -o bin/fakegateway ./test/fakegateway
pc=$root/bin/profile-controller
fake=$root/bin/fakegateway

T=$(mktemp -d)
H=$T/home
ctl_pid=
svscan_pid=

# pids_under prints the pids of processes whose command line or working directory is under $T:
# s6-supervise and the gateways run in the slot dirs, s6-svscan has $T in its arguments.
pids_under() {
	local d pid cwd cmd
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[ "$pid" = "$$" ] && continue
		cwd=$(readlink "$d/cwd" 2>/dev/null) || cwd=
		cmd=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || cmd=
		case "$cwd/ $cmd" in
		"$T"/* | *" $T"*) echo "$pid" ;;
		esac
	done
}

# wait_gone waits up to $2 seconds for pid $1 to exit.
wait_gone() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

cleanup() {
	local rc=$? pid left
	set +e
	if [ "$rc" -ne 0 ]; then
		echo
		echo "demo failed (exit $rc); controller log and s6-svscan output follow" >&2
		{ tail -n 40 "$T/controller.log" "$T/svscan.log" 2>/dev/null; } >&2
	fi
	step "Cleaning up $T"
	if [ -n "$ctl_pid" ] && kill -0 "$ctl_pid" 2>/dev/null; then
		kill -TERM "$ctl_pid"
		wait_gone "$ctl_pid" 15 || kill -KILL "$ctl_pid"
	fi
	if [ -n "$svscan_pid" ] && kill -0 "$svscan_pid" 2>/dev/null; then
		# -t: s6-svscan brings every supervised service down, then exits.
		"$s6bin/s6-svscanctl" -t "$T/service"
		wait_gone "$svscan_pid" 15 || kill -KILL "$svscan_pid"
	fi
	left=$(pids_under)
	if [ -n "$left" ]; then
		for pid in $left; do
			echo "stopping leftover process $pid: $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)"
		done
		for pid in $left; do kill -TERM "$pid" 2>/dev/null; done
		sleep 1
		for pid in $(pids_under); do kill -KILL "$pid" 2>/dev/null; done
	fi
	rm -rf "$T"
	echo "done"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_state waits up to 10 s until s6-svstat reports slot $1 as $2 ("up" or "down").
wait_state() {
	local dir=$T/service/gateway-$1 deadline=$((SECONDS + 10)) st=
	while :; do
		st=$("$s6bin/s6-svstat" "$dir" 2>/dev/null) || st=
		case "$st" in "$2 "*) echo "gateway-$1: $st"; return 0 ;; esac
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "gateway-$1 is not $2 after 10 s (s6-svstat: ${st:-no supervisor})" >&2
			return 1
		fi
		sleep 0.2
	done
}

step "Making HERMES_HOME=$H"
mkdir -p "$H/logs" "$H/profiles" "$T/service"
for p in coder writer assistant; do
	mkdir -p "$H/profiles/$p"
	echo "# $p" >"$H/profiles/$p/SOUL.md"
done
echo '{"gateway_state":"running"}' >"$H/gateway_state.json"
echo '{"desired_state":"running"}' >"$H/profiles/coder/gateway_state.json"
echo '{"gateway_state":"stopped"}' >"$H/profiles/writer/gateway_state.json"
echo "root:      gateway_state running   -> boot: up"
echo "coder:     desired_state running   -> boot: up"
echo "writer:    gateway_state stopped   -> boot: registered down"
echo "assistant: no gateway_state.json   -> boot: registered down"

step "Writing $T/config.yaml"
cat >"$T/config.yaml" <<YAML
hermesHome: $(yq "$H")
scandir: $(yq "$T/service")
s6BinDir: $(yq "$s6bin")
runtimeDir: $(yq "$T/run")
templates:
  run: |
    #!/bin/sh
    exec $(sq "$fake") --state-file {{shquote .ProfileDir}}/gateway_state.json
  finish: |
    #!/bin/sh
    if [ "\$1" = 0 ] || [ "\$1" = 78 ]; then exit 125; fi
    exit 0
  logRun: |
    #!/bin/sh
    set -e
    mkdir -p {{shquote (printf "%s/logs/gateways/%s" .HermesHome .Name)}}
    exec s6-log 1 n10 s1000000 T {{shquote (printf "%s/logs/gateways/%s" .HermesHome .Name)}}
YAML
chmod 0600 "$T/config.yaml" # the controller refuses a group- or world-writable config
cat "$T/config.yaml"
pcc() { "$pc" --config "$T/config.yaml" "$@"; }

step "Starting s6-svscan on $T/service"
setsid "$s6bin/s6-svscan" "$T/service" >"$T/svscan.log" 2>&1 &
svscan_pid=$!
deadline=$((SECONDS + 10))
until [ -p "$T/service/.s6-svscan/control" ]; do
	[ "$SECONDS" -ge "$deadline" ] && {
		echo "s6-svscan did not start" >&2
		exit 1
	}
	sleep 0.1
done
echo "s6-svscan pid $svscan_pid"

step "Boot pass: profile-controller reconcile --once --boot"
pcc reconcile --once --boot
wait_state default up
wait_state coder up
wait_state writer down
wait_state assistant down

step "profile-controller status -o table"
pcc status -o table

step "Starting the runtime loop: profile-controller run (log: $T/controller.log)"
# Not through pcc: a backgrounded function is a subshell, and $! must be the controller itself.
"$pc" --config "$T/config.yaml" run >"$T/controller.log" 2>&1 &
ctl_pid=$!
echo "controller pid $ctl_pid"

step "Operator edit: writer's desired_state -> running"
tmp=$H/profiles/writer/.gateway_state.json.edit
echo '{"gateway_state":"stopped","desired_state":"running"}' >"$tmp"
mv "$tmp" "$H/profiles/writer/gateway_state.json"
cat "$H/profiles/writer/gateway_state.json"
echo
wait_state writer up
kill -0 "$ctl_pid" || {
	echo "the controller exited" >&2
	exit 1
}

step "profile-controller status -o table"
pcc status -o table

step "$H/logs/container-boot.log"
cat "$H/logs/container-boot.log"
