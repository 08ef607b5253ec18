"""A throwaway root for deploy/pi/install.sh: the real script, as root, changing nothing outside.

`unshare --mount` gives a process (a `sleep`) its own mount namespace; copy-on-write overlays
there cover /etc, /opt, /var/lib and /run, their changes landing in the test's tmp directory.
Every command of the test runs inside with `nsenter`, so useradd, the venv, the config, the
units and the outbox are real files that vanish with the namespace. systemd is not running
here: `systemctl` is a stub first on PATH that logs its arguments and, for `start` /
`enable --now`, runs the unit's ExecStart as the unit's User in the background, as systemd
would, so the agent really delivers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

# The directories install.sh writes to, as copy-on-write overlays.
OVERLAID = ("/etc", "/opt", "/var/lib", "/run")
# A PATH like a root shell's on Debian: the system's python3, not this venv's or pyenv's.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

SYSTEMCTL_STUB = r"""#!/bin/bash
# systemctl for a throwaway root without systemd: logs, and runs the unit's ExecStart itself.
set -euo pipefail
echo "$*" >>"$SANDBOX_STATE/systemctl.log"
unit_dir=/etc/systemd/system
pidfile() { echo "$SANDBOX_STATE/$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
start() {
  running "$1" && return 0
  local exec user
  exec="$(sed -n 's/^ExecStart=//p' "$unit_dir/$1")"
  user="$(sed -n 's/^User=//p' "$unit_dir/$1")"
  # shellcheck disable=SC2086  # ExecStart is split into words, as systemd splits it
  (cd "$(sed -n 's/^WorkingDirectory=//p' "$unit_dir/$1")" &&
    exec setpriv --reuid="$user" --regid="$user" --init-groups -- $exec \
      >>"$SANDBOX_STATE/$1.log" 2>&1) &
  echo $! >"$(pidfile "$1")"
}
stop() {
  if running "$1"; then
    local pid
    pid="$(cat "$(pidfile "$1")")"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$(pidfile "$1")"
}
case "$1" in
  daemon-reload | enable | disable) [ "${2:-}" = --now ] || exit 0 ;;
esac
case "$1 ${2:-}" in
  "enable --now") start "$3" ;;
  "disable --now") stop "$3" ;;
  "start "*) start "$2" ;;
  "stop "*) stop "$2" ;;
  "restart "*) stop "$2"; start "$2" ;;
  "is-active --quiet") running "$3" ;;
  *) echo "systemctl stub: unexpected: $*" >&2; exit 1 ;;
esac
"""


class ThrowawayRoot:
    """A mount namespace whose /etc, /opt, /var/lib and /run are overlays on `workdir`."""

    def __init__(self, workdir: Path, network: bool = True) -> None:
        """Without `network`, in a network namespace of its own too: not even loopback is up."""
        self.state = workdir / "state"  # the stub's log, pid files and the daemon's output
        self.bin = workdir / "bin"
        for path in (self.state, self.bin):
            path.mkdir(parents=True)
        stub = self.bin / "systemctl"
        stub.write_text(SYSTEMCTL_STUB)
        stub.chmod(0o755)
        self._namespaces = ["--mount"] if network else ["--mount", "--net"]
        self._holder = subprocess.Popen(
            ["unshare", *self._namespaces, "--propagation", "private", "sleep", "infinity"]
        )
        mounts = []
        for index, target in enumerate(OVERLAID):
            upper, work = workdir / f"upper{index}", workdir / f"work{index}"
            upper.mkdir()
            work.mkdir()
            mounts.append(
                f"mount -t overlay overlay -o lowerdir={target},upperdir={upper},workdir={work}"
                f" {target}"
            )
        # install.sh takes /run/systemd/system as the sign that systemd runs.
        mounts.append("mkdir -p /run/systemd/system")
        deadline = time.monotonic() + 10
        while self._namespace() == _namespace_of(os.getpid()):
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.01)
        self.run("sh", "-ec", "\n".join(mounts), check=True)

    def _namespace(self) -> str:
        return _namespace_of(self._holder.pid)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.bin}:{SYSTEM_PATH}",
            "SANDBOX_STATE": str(self.state),
            **(extra or {}),
        }

    def run(
        self, *args: str | Path, env: Mapping[str, str] | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """`args` inside the namespace; stdout and stderr captured."""
        proc = subprocess.run(
            ["nsenter", f"--target={self._holder.pid}", *self._namespaces, "--", *map(str, args)],
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert not check or proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def path(self, inside: str) -> Path:
        """A path as the namespace sees it, readable from the test's own process."""
        return Path(f"/proc/{self._holder.pid}/root{inside}")

    def systemctl_calls(self) -> list[str]:
        log = self.state / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []

    def daemon_pid(self, unit: str = "readynet-agent.service") -> int | None:
        pidfile = self.state / f"{unit}.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def close(self) -> None:
        """Ends the daemon the stub started (if still running), then the namespace."""
        pid = self.daemon_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._holder.kill()
        self._holder.wait(timeout=10)


def _namespace_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")
