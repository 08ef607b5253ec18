"""A two-host link for the benchmarks: two network namespaces joined by a veth pair, shaped by tc.

The far end (`SERVER_ADDRESS`) and the near end (`CLIENT_ADDRESS`) are private addresses that
exist only on the veth pair inside the namespaces this module creates, so nothing sent between
them touches the host's interfaces. Each end's egress is shaped with tbf, so both directions are
held to the rate; where the kernel has netem, it sits above tbf to add delay or loss. Nothing
here fakes a delay: without netem the impaired cases cannot run, and `netem_missing` says why.

Example:
    >>> with TwoHostLink() as link:
    ...     link.shape(Impairment(rate_mbit=100))
    ...     link.server_command(["iperf3", "-s"])  # -> ["ip", "netns", "exec", ..., "iperf3", "-s"]
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from types import TracebackType

from bench._common import require_tool

SERVER_ADDRESS = "10.255.255.1"
CLIENT_ADDRESS = "10.255.255.2"
PREFIX_LEN = 30
SERVER_DEVICE = "rnb-srv"
CLIENT_DEVICE = "rnb-cli"
COMMAND_TIMEOUT_S = 20.0
# tbf needs a bucket of at least what the rate sends between two timer ticks (rate / HZ, HZ as
# low as 100), else it cannot reach the rate: 5 ms of the rate, never under 32 KiB.
BURST_S = 0.005
MIN_BURST_BYTES = 32 * 1024
# How long a packet may wait in tbf's queue before it is dropped (the link's buffer).
QUEUE_LATENCY_MS = 20
# netem's default queue of 1,000 packets is 12 ms at 1 Gbit/s: too short for a 15 ms delay.
NETEM_LIMIT_PACKETS = 20_000


class LinkError(RuntimeError):
    pass


@dataclass(frozen=True)
class Impairment:
    """A shaped rate, and (netem only) a delay each way and a loss rate each way."""

    rate_mbit: int
    delay_ms_each_way: float = 0.0
    loss_percent: float = 0.0

    @property
    def needs_netem(self) -> bool:
        return self.delay_ms_each_way > 0 or self.loss_percent > 0

    def describe(self) -> str:
        parts = [f"{self.rate_mbit} Mbit/s"]
        if self.delay_ms_each_way:
            parts.append(f"{2 * self.delay_ms_each_way:g} ms RTT added")
        if self.loss_percent:
            parts.append(f"{self.loss_percent:g} % loss each way")
        return ", ".join(parts)


def unavailable() -> str | None:
    """Why a link cannot be built here, or None."""
    if os.geteuid() != 0:
        return "not root (ip netns and tc need root)"
    return require_tool("ip") or require_tool("tc")


class TwoHostLink:
    """Namespaces `rn-bench-srv-<pid>` and `rn-bench-cli-<pid>`, removed on leaving the block."""

    def __init__(self) -> None:
        self.server_ns = f"rn-bench-srv-{os.getpid()}"
        self.client_ns = f"rn-bench-cli-{os.getpid()}"
        self._created: list[str] = []
        self.netem_missing: str | None = None

    def __enter__(self) -> TwoHostLink:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def server_command(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.server_ns, *command]

    def client_command(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.client_ns, *command]

    def shape(self, impairment: Impairment) -> None:
        """Replace both ends' qdiscs: tbf at the rate, under netem when impaired."""
        if impairment.needs_netem and self.netem_missing is not None:
            raise LinkError(f"netem is needed for {impairment.describe()}: {self.netem_missing}")
        for namespace, device in (
            (self.server_ns, SERVER_DEVICE),
            (self.client_ns, CLIENT_DEVICE),
        ):
            qdisc = ["tc", "-n", namespace, "qdisc"]
            # Deleting the root qdisc of a device that has only the default one fails: ignore.
            _run([*qdisc, "del", "dev", device, "root"], check=False)
            tbf = _tbf(impairment.rate_mbit)
            if impairment.needs_netem:
                netem = ["netem", "limit", str(NETEM_LIMIT_PACKETS)]
                if impairment.delay_ms_each_way:
                    netem += ["delay", f"{impairment.delay_ms_each_way:g}ms"]
                if impairment.loss_percent:
                    netem += ["loss", f"{impairment.loss_percent:g}%"]
                _run([*qdisc, "add", "dev", device, "root", "handle", "1:", *netem])
                _run([*qdisc, "add", "dev", device, "parent", "1:1", "handle", "10:", *tbf])
            else:
                _run([*qdisc, "add", "dev", device, "root", "handle", "1:", *tbf])

    def close(self) -> None:
        for namespace in reversed(self._created):
            _remove_namespace(namespace)
        self._created.clear()

    def _build(self) -> None:
        for namespace in (self.server_ns, self.client_ns):
            _run(["ip", "netns", "add", namespace])
            self._created.append(namespace)
        # Both veth ends are created directly inside the namespaces, never in the host's.
        _run(
            [
                "ip",
                "link",
                "add",
                SERVER_DEVICE,
                "netns",
                self.server_ns,
                "type",
                "veth",
                "peer",
                "name",
                CLIENT_DEVICE,
                "netns",
                self.client_ns,
            ]
        )
        for namespace, device, address in (
            (self.server_ns, SERVER_DEVICE, SERVER_ADDRESS),
            (self.client_ns, CLIENT_DEVICE, CLIENT_ADDRESS),
        ):
            _run(["ip", "-n", namespace, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", device])
            _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            _run(["ip", "-n", namespace, "link", "set", device, "up"])
        self.netem_missing = self._probe_netem()

    def _probe_netem(self) -> str | None:
        # On the near namespace's loopback, which carries none of the bench's traffic.
        add = ["tc", "-n", self.client_ns, "qdisc", "add", "dev", "lo", "root", "netem"]
        done = _run([*add, "delay", "1ms"], check=False)
        if done.returncode != 0:
            return done.stderr.strip() or f"tc exited {done.returncode}"
        _run(["tc", "-n", self.client_ns, "qdisc", "del", "dev", "lo", "root"])
        return None


def _tbf(rate_mbit: int) -> list[str]:
    burst = max(MIN_BURST_BYTES, int(rate_mbit * 1e6 / 8 * BURST_S))
    return [
        "tbf",
        "rate",
        f"{rate_mbit}mbit",
        "burst",
        str(burst),
        "latency",
        f"{QUEUE_LATENCY_MS}ms",
    ]


def _run(command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if check and done.returncode != 0:
        raise LinkError(f"`{' '.join(command)}` failed: {done.stderr.strip() or done.returncode}")
    return done


def _remove_namespace(namespace: str) -> None:
    # Anything still running in a namespace this run created was started by this run.
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    # Deleting the namespace deletes its veth end, the peer and their qdiscs with it.
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
