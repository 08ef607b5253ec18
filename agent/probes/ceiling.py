"""What the measuring box itself can do: the link speed of the interface that reaches a host.

A Raspberry Pi on a 100 Mbit/s port reads about 94 Mbit/s whatever the school's circuit is. So
every throughput result says the agent's link speed and whether the result came within 10 % of
it (`agent_limited`): such a result is a floor, not the school's capacity. Linux tells the
speed of a wired interface in /sys/class/net/<if>/speed; Wi-Fi interfaces have no such figure
there (only a `wireless` entry), so on Wi-Fi the ceiling is unknown unless configured.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

SYS_NET = Path("/sys/class/net")
# Within this fraction of the ceiling, a result says more about the agent than the school.
LIMITED_FRACTION = 0.9
_SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class Ceiling:
    interface: str | None
    link_mbps: int | None
    wifi: bool | None

    def limits(self, *rates_bps: float | None) -> bool:
        """Whether any of `rates_bps` came within 10 % of the link speed."""
        if not self.link_mbps:
            return False
        bound = LIMITED_FRACTION * self.link_mbps * 1e6
        return any(rate is not None and rate >= bound for rate in rates_bps)


def ceiling_towards(host: str, port: int, *, sys_net: Path = SYS_NET) -> Ceiling:
    """The ceiling of the interface this box would use to reach `host`:`port`."""
    local = _local_address(host, port)
    interface = None if local is None else _interface_with(local, sys_net)
    if interface is None:
        return Ceiling(None, None, None)
    return interface_ceiling(interface, sys_net=sys_net)


def interface_ceiling(interface: str, *, sys_net: Path = SYS_NET) -> Ceiling:
    base = sys_net / interface
    wifi = (base / "wireless").exists() or (base / "phy80211").exists()
    return Ceiling(interface, None if wifi else _speed_mbps(base), wifi)


def _speed_mbps(base: Path) -> int | None:
    # Virtual and down interfaces answer EINVAL or -1; unknown is not a ceiling.
    try:
        speed = int((base / "speed").read_text().strip())
    except (OSError, ValueError):
        return None
    return speed if speed > 0 else None


def _local_address(host: str, port: int) -> str | None:
    """The source address the kernel picks for `host`: a UDP connect() sends no packet."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.connect(address)
            except OSError:
                continue
            return str(probe.getsockname()[0])
    return None


def _interface_with(address: str, sys_net: Path) -> str | None:
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return "lo"
    if ip.version == 6:
        return _ipv6_interface(ip)
    for _, name in socket.if_nameindex():
        if _ipv4_of(name) == ip:
            return name
    return None


def _ipv4_of(name: str) -> ipaddress.IPv4Address | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return ipaddress.IPv4Address(packed[20:24])


def _ipv6_interface(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    # /proc/net/if_inet6: address (32 hex digits), index, prefix, scope, flags, name.
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and ipaddress.IPv6Address(int(fields[0], 16)) == ip:
            return fields[5]
    return None
