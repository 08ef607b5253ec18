"""`readynet-agent snmp probe HOST`: poll one device now, before adding it to `agent.yaml`.

It needs no agent config and no token: it polls in this process (pysnmp is imported only when
the command runs), says which device profile matched, and prints what the agent would report,
as a table (default) or as JSON. Exit status: 0 when the poll succeeded, 1 when the device gave
an error (the output still carries it), 2 for bad arguments.

Credentials may come from the environment instead of the command line, so they stay out of `ps`
and shell history: READYNET_SNMP_COMMUNITY, READYNET_SNMP_V3_AUTH_KEY, READYNET_SNMP_V3_PRIV_KEY
(an option given on the command line wins). There is no default community: give one.

The JSON form is one object with exactly these keys (absent values are null):

    profile, sys_object_id, sys_uptime_ticks,
    interfaces: [{ifindex, name, alias, oper_up, speed_mbps, octets_in, octets_out,
                  counter_bits}],
    clients, aps_up, aps_total,
    aps: [{key, name, clients, up}],
    ssids: [{name, clients}],
    error

Example:
    $ READYNET_SNMP_COMMUNITY=s3cret readynet-agent snmp probe 10.20.0.2 --format json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import SecretStr, ValidationError

from agent.errors import ConfigError
from agent.redact import scrub
from agent.settings import DeviceSettings, SnmpAuth, SnmpSettings
from agent.snmp.profile import BASE_PROFILE, ProfileSet, load_profiles
from agent.wire import SnmpPoll

ENV_COMMUNITY = "READYNET_SNMP_COMMUNITY"
ENV_AUTH_KEY = "READYNET_SNMP_V3_AUTH_KEY"
ENV_PRIV_KEY = "READYNET_SNMP_V3_PRIV_KEY"

JSON_KEYS = (
    "profile",
    "sys_object_id",
    "sys_uptime_ticks",
    "interfaces",
    "clients",
    "aps_up",
    "aps_total",
    "aps",
    "ssids",
    "error",
)
INTERFACE_KEYS = (
    "ifindex",
    "name",
    "alias",
    "oper_up",
    "speed_mbps",
    "octets_in",
    "octets_out",
    "counter_bits",
)
AP_KEYS = ("key", "name", "clients", "up")
SSID_KEYS = ("name", "clients")

_AUTH_PROTOCOLS: tuple[str, ...] = get_args(SnmpAuth.model_fields["auth_protocol"].annotation)
_PRIV_PROTOCOLS: tuple[str, ...] = get_args(SnmpAuth.model_fields["priv_protocol"].annotation)
_LEVELS: tuple[str, ...] = get_args(SnmpAuth.model_fields["security_level"].annotation)
# Which option a settings field comes from, for error messages.
_OPTION_OF = {
    "name": "HOST",
    "address": "HOST",
    "port": "--port",
    "timeout_s": "--timeout",
    "retries": "--retries",
    "auth.user": "--v3-user",
    "auth.context": "--v3-context",
}
_EPILOG = f"""\
credentials from the environment (kept out of ps and shell history; an option wins):
  {ENV_COMMUNITY}     the SNMPv2c community
  {ENV_AUTH_KEY}   the SNMPv3 auth passphrase
  {ENV_PRIV_KEY}   the SNMPv3 priv passphrase

exit status: 0 the poll succeeded, 1 the device gave an error (still printed), 2 bad arguments.
--format json prints one object: {", ".join(JSON_KEYS)}.
"""


class _BadArguments(Exception):
    """What the user asked for cannot be polled; exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `snmp probe` options, on `parser` (a sub-command parser of `readynet-agent`)."""
    parser.description = "Poll one SNMP device now and print what the agent would report."
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("host", metavar="HOST", help="the device's address or DNS name")
    parser.add_argument(
        "--port", type=int, default=161, metavar="P", help="UDP port (default: 161)"
    )
    parser.add_argument(
        "--community",
        metavar="C",
        help=f"SNMPv2c community (or {ENV_COMMUNITY}); there is no default",
    )
    v3 = parser.add_argument_group("SNMPv3 (USM); --v3-user selects SNMPv3")
    v3.add_argument("--v3-user", metavar="U", help="USM user name")
    v3.add_argument(
        "--v3-level",
        metavar="LEVEL",
        type=_one_of(_LEVELS),
        help=f"{' | '.join(_LEVELS)} (default: authPriv)",
    )
    v3.add_argument(
        "--v3-auth-key", metavar="K", help=f"auth passphrase, 8+ characters (or {ENV_AUTH_KEY})"
    )
    v3.add_argument(
        "--v3-auth-proto",
        metavar="PROTO",
        type=_one_of(_AUTH_PROTOCOLS),
        help=f"{' | '.join(_AUTH_PROTOCOLS)} (default: SHA; SHA-256 is read as SHA256)",
    )
    v3.add_argument(
        "--v3-priv-key", metavar="K", help=f"priv passphrase, 8+ characters (or {ENV_PRIV_KEY})"
    )
    v3.add_argument(
        "--v3-priv-proto",
        metavar="PROTO",
        type=_one_of(_PRIV_PROTOCOLS),
        help=f"{' | '.join(_PRIV_PROTOCOLS)} (default: AES; AES192/AES256 extend keys as "
        "net-snmp's AES-192/AES-256 do, AES192C/AES256C as Cisco's and net-snmp's -C ones)",
    )
    v3.add_argument("--v3-context", metavar="CTX", help="context name (default: none)")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="use this device profile instead of matching one (e.g. cisco_wlc)",
    )
    parser.add_argument(
        "--profile-dir",
        metavar="DIR",
        type=Path,
        action="append",
        help="extra profile folder, repeatable (default: the agent's, "
        f"{', '.join(str(p) for p in SnmpSettings().profile_dirs)})",
    )
    parser.add_argument(
        "--timeout", type=float, default=2.0, metavar="S", help="seconds per request (default: 2)"
    )
    parser.add_argument(
        "--retries", type=int, default=1, metavar="N", help="retries per request (default: 1)"
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default: table)"
    )


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Poll the device `args` describe, print the result; the exit status."""
    environ = os.environ if environ is None else environ
    try:
        device = device_from_args(args, environ)
        profiles = _profiles(args)
    except _BadArguments as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    # Imported here: pysnmp and its MIB machinery load only when a device is polled.
    from agent.snmp.device import poll_device

    poll = scrub(asyncio.run(poll_device(device, profiles)), device.auth.secrets())
    if args.format == "json":
        sys.stdout.write(json.dumps(probe_json(poll), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(probe_table(poll, device, profiles) + "\n")
    return 0 if poll.error is None else 1


def device_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> DeviceSettings:
    """The device settings the options describe; raises _BadArguments, never quoting a secret."""
    auth = _auth(args, environ)
    timeout = args.timeout
    retries = args.retries
    fields: dict[str, Any] = {
        "name": args.host[:64],
        "address": args.host,
        "port": args.port,
        "auth": auth,
        "timeout_s": timeout,
        "retries": retries,
        "profile": args.profile,
    }
    if isinstance(timeout, float) and isinstance(retries, int) and timeout > 0 and retries >= 0:
        # A poll is three or four requests: let a slow device use its timeouts, not the budget.
        fields["budget_s"] = min(600.0, max(30.0, 4 * timeout * (retries + 1)))
    try:
        return DeviceSettings.model_validate(fields)
    except ValidationError as exc:
        raise _BadArguments(_problems(exc)) from None


def probe_json(poll: SnmpPoll) -> dict[str, Any]:
    """The documented JSON shape of a poll (see the module docstring)."""
    return {
        "profile": poll.profile,
        "sys_object_id": poll.sys_object_id,
        "sys_uptime_ticks": poll.sys_uptime_ticks,
        "interfaces": [
            {
                "ifindex": i.ifindex,
                "name": i.name,
                "alias": i.alias,
                "oper_up": i.oper_up,
                "speed_mbps": i.speed_mbps,
                "octets_in": i.octets_in,
                "octets_out": i.octets_out,
                "counter_bits": i.counter_bits,
            }
            for i in poll.interfaces
        ],
        "clients": poll.clients,
        "aps_up": poll.aps_up,
        "aps_total": poll.aps_total,
        "aps": [{"key": a.key, "name": a.name, "clients": a.clients, "up": a.up} for a in poll.aps],
        "ssids": [{"name": s.name, "clients": s.clients} for s in poll.ssids],
        "error": poll.error,
    }


def probe_table(poll: SnmpPoll, device: DeviceSettings, profiles: ProfileSet) -> str:
    """The poll for a person: what was asked, which profile matched, then one table per kind."""
    device_line = ("device", f"{poll.address} ({_speaks(device.auth)})")
    if poll.error is not None:
        return _pairs([device_line, ("error", poll.error)])
    facts = [
        device_line,
        ("profile", _profile_line(poll, device, profiles)),
        ("sysObjectID", _text(poll.sys_object_id)),
        ("uptime", _uptime(poll.sys_uptime_ticks)),
    ]
    if poll.clients is not None or poll.aps or poll.ssids:
        facts.append(("clients", _text(poll.clients)))
    if poll.aps_up is not None or poll.aps_total is not None or poll.aps:
        total = "" if poll.aps_total is None else f" of {poll.aps_total}"
        facts.append(("APs up", f"{_text(poll.aps_up)}{total}"))
    if poll.duration_s is not None:
        facts.append(("poll took", f"{poll.duration_s:.2f} s"))
    lines = [_pairs(facts)]
    lines.append(
        _section(
            "interfaces",
            ("ifIndex", "name", "alias", "oper", "Mbit/s", "octets in", "octets out", "bits"),
            [
                (
                    i.ifindex,
                    i.name,
                    i.alias,
                    {True: "up", False: "down", None: None}[i.oper_up],
                    i.speed_mbps,
                    i.octets_in,
                    i.octets_out,
                    i.counter_bits,
                )
                for i in poll.interfaces
            ],
        )
    )
    if poll.aps:
        aps = [(a.key, a.name, a.clients, _yes_no(a.up)) for a in poll.aps]
        lines.append(_section("access points", ("key", "name", "clients", "up"), aps))
    if poll.ssids:
        ssids = [(s.name, s.clients) for s in poll.ssids]
        lines.append(_section("SSIDs", ("name", "clients"), ssids))
    return "\n\n".join(lines)


def _auth(args: argparse.Namespace, environ: Mapping[str, str]) -> SnmpAuth:
    v3_options = {
        "--v3-level": args.v3_level,
        "--v3-auth-key": args.v3_auth_key,
        "--v3-auth-proto": args.v3_auth_proto,
        "--v3-priv-key": args.v3_priv_key,
        "--v3-priv-proto": args.v3_priv_proto,
        "--v3-context": args.v3_context,
    }
    if args.v3_user is None:
        stray = [option for option, value in v3_options.items() if value is not None]
        if stray:
            raise _BadArguments(f"{stray[0]} needs --v3-user (SNMPv3)")
        community = args.community or environ.get(ENV_COMMUNITY)
        if not community:
            raise _BadArguments(
                f"give --community (or set {ENV_COMMUNITY}), or --v3-user for SNMPv3"
            )
        return SnmpAuth(version="2c", community=SecretStr(community))
    if args.community is not None:
        raise _BadArguments("give either --community (SNMPv2c) or --v3-user (SNMPv3), not both")
    level = args.v3_level or "authPriv"
    keys: dict[str, SecretStr | None] = {"auth_key": None, "priv_key": None}
    needed = {"noAuthNoPriv": [], "authNoPriv": ["auth_key"], "authPriv": ["auth_key", "priv_key"]}
    sources = {
        "auth_key": ("--v3-auth-key", args.v3_auth_key, ENV_AUTH_KEY),
        "priv_key": ("--v3-priv-key", args.v3_priv_key, ENV_PRIV_KEY),
    }
    for name in needed[level]:
        option, given, variable = sources[name]
        key = given if given is not None else environ.get(variable)
        if not key:
            raise _BadArguments(f"{level} needs {option} (or {variable})")
        if len(key) < 8:
            raise _BadArguments(
                f"{option} must have at least 8 characters (RFC 3414); the value is not shown"
            )
        keys[name] = SecretStr(key)
    try:
        return SnmpAuth(
            version="3",
            user=args.v3_user,
            security_level=level,
            auth_protocol=args.v3_auth_proto or "SHA",
            auth_key=keys["auth_key"],
            priv_protocol=args.v3_priv_proto or "AES",
            priv_key=keys["priv_key"],
            context=args.v3_context or "",
        )
    except ValidationError as exc:
        raise _BadArguments(_problems(exc, prefix="auth.")) from None


def _profiles(args: argparse.Namespace) -> ProfileSet:
    dirs = args.profile_dir if args.profile_dir else SnmpSettings().profile_dirs
    try:
        profiles = load_profiles(dirs)
    except ConfigError as exc:
        raise _BadArguments(f"device profiles: {exc}") from None
    if args.profile is not None and args.profile not in profiles.profiles:
        known = ", ".join(sorted(profiles.profiles))
        raise _BadArguments(f"--profile: no device profile named {args.profile!r} (known: {known})")
    return profiles


def _problems(exc: ValidationError, prefix: str = "") -> str:
    # pydantic's messages here name the limit, never the value (no input_value).
    problems = []
    for error in exc.errors():
        where = prefix + ".".join(str(part) for part in error["loc"])
        problems.append(f"{_OPTION_OF.get(where, where)}: {error['msg']}")
    return "; ".join(problems)


def _one_of(choices: Sequence[str]) -> Any:
    """An argparse type: `choices`, whatever the case and with or without dashes (SHA-256)."""
    by_key = {choice.upper().replace("-", ""): choice for choice in choices}

    def parse(value: str) -> str:
        try:
            return by_key[value.upper().replace("-", "")]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not one of {', '.join(choices)}"
            ) from None

    return parse


def _speaks(auth: SnmpAuth) -> str:
    if auth.version == "2c":
        return "SNMPv2c"
    how = [f"user {auth.user}", auth.security_level]
    if auth.security_level != "noAuthNoPriv":
        how.append(auth.auth_protocol)
    if auth.security_level == "authPriv":
        how.append(auth.priv_protocol)
    if auth.context:
        how.append(f"context {auth.context}")
    return "SNMPv3 " + ", ".join(how)


def _profile_line(poll: SnmpPoll, device: DeviceSettings, profiles: ProfileSet) -> str:
    name = poll.profile or BASE_PROFILE
    description = profiles.profiles[name].description if name in profiles.profiles else ""
    if device.profile is not None:
        how = "forced with --profile"
    elif name == BASE_PROFILE:
        how = "no vendor profile matched: standard IF-MIB interfaces only"
    else:
        how = "matched on sysObjectID / sysDescr"
    return f"{name}" + (f" - {description}" if description else "") + f" ({how})"


def _uptime(ticks: int | None) -> str:
    if ticks is None:
        return "-"
    seconds = ticks // 100
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours:02}:{rest // 60:02}:{rest % 60:02} ({ticks} ticks)"


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _pairs(pairs: Sequence[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in pairs)


def _section(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if not rows:
        return f"{title}: none"
    cells = [list(header)] + [[_text(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    body = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join([f"{title} ({len(rows)})", *body])
