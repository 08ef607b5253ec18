"""A thin typed layer over pysnmp 7 asyncio: SNMPv2c/v3 GET of scalars and multi-column table walks.

Everything here speaks numeric OIDs (``lookupMib=False``), so the Pi never loads or compiles a MIB,
and hands back plain Python values (`int` or `str`), never pyasn1 objects. pysnmp *returns* its
failures instead of raising them; this module turns them into the agent's own errors at the
boundary: no answer becomes `DeviceUnreachable`, an SNMP error status becomes `DeviceError`.

Example:
    >>> async def uptime(device: DeviceSettings) -> int | str | None:  # doctest: +SKIP
    ...     async with open_session(device) as session:
    ...         values = await get_scalars(session, ["1.3.6.1.2.1.1.3.0"])  # sysUpTime.0
    ...     return values["1.3.6.1.2.1.1.3.0"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_AUTH_NONE,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
)
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import IpAddress
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject
from pysnmp.smi.builder import MibBuilder
from pysnmp.smi.view import MibViewController

from agent.errors import DeviceError, DeviceUnreachable
from agent.redact import redact
from agent.settings import DeviceSettings, SnmpAuth

SnmpValue = int | str
Oid = tuple[int, ...]

# pysnmp's answer to one request: (errorIndication, errorStatus, errorIndex, varBinds).
_Answer = tuple[Any, Any, Any, Sequence[Any]]

# The engine.cache key where pysnmp.hlapi.varbinds looks for the engine's MibViewController. If a
# pysnmp release renames it, polls only get slower (a MIB view per engine), not wrong.
_MIB_VIEW_CACHE_KEY = "mibViewController"

# mpModel=1 is SNMPv2c (v1 is not offered: it has no Counter64 and no GETBULK).
_SNMP_V2C = 1
_AUTH_PROTOCOLS = {
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
# AES192/256 extend a short key two ways: Blumenthal's draft (net-snmp's plain AES-192/AES-256)
# and Reeder's (Cisco's, net-snmp's AES-192-C/AES-256-C); the two agree only when the auth hash
# is long enough to need no extension (SHA-256 and up).
_PRIV_PROTOCOLS = {
    "DES": USM_PRIV_CBC56_DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": USM_PRIV_CFB192_AES,
    "AES256C": USM_PRIV_CFB256_AES,
}
# What pysnmp's USM says when v3 credentials are wrong: not an unreachable device.
_USM_FAILURES = (
    errind.UnknownUserName,
    errind.UnknownSecurityName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
)


def endpoint(device: DeviceSettings) -> str:
    """The device's "host:port", as errors and `SnmpPoll.address` name it."""
    return f"{device.address}:{device.port}"


@dataclass(frozen=True)
class SnmpSession:
    """One device's SNMP engine, credentials and transport; build it with `open_session`."""

    device: DeviceSettings
    engine: Any
    auth: Any
    target: Any
    context: Any

    @property
    def label(self) -> str:
        return f"{self.device.name} ({endpoint(self.device)})"


def new_engine() -> Any:
    """An SNMP engine for every poll of one round (a new engine per poll costs 60-90 ms of CPU
    and leaks); close it with `close_engine`."""
    engine = SnmpEngine()
    # hlapi builds a MIB view per engine on its first request (with pysmi installed, a whole MIB
    # compiler: about 0.3-0.9 s); numeric OIDs only need the base SMI, so share one view.
    engine.cache[_MIB_VIEW_CACHE_KEY] = _shared_mib_view()
    return engine


def close_engine(engine: Any) -> None:
    # Without this the engine keeps its UDP socket and timer task alive after the round.
    engine.close_dispatcher()


@asynccontextmanager
async def open_session(device: DeviceSettings, engine: Any = None) -> AsyncIterator[SnmpSession]:
    """Open a session to `device` on `engine` (or on an engine of its own, closed on exit).

    Raises DeviceUnreachable if the address cannot be resolved.
    """
    own_engine = engine is None
    engine = new_engine() if own_engine else engine
    try:
        try:
            target = await UdpTransportTarget.create(
                (device.address, device.port), timeout=device.timeout_s, retries=device.retries
            )
        except PySnmpError as exc:
            reason = _redacted(device, str(exc))
            raise DeviceUnreachable(f"{device.name} ({endpoint(device)}): {reason}") from exc
        yield SnmpSession(
            device=device,
            engine=engine,
            auth=_auth_data(device.auth),
            target=target,
            context=ContextData(contextName=device.auth.context.encode()),
        )
    finally:
        if own_engine:
            close_engine(engine)


def _auth_data(auth: SnmpAuth) -> Any:
    if auth.version == "2c":
        return CommunityData(auth.community.get_secret_value(), mpModel=_SNMP_V2C)
    level = auth.security_level
    auth_key = priv_key = None
    if auth.auth_key is not None and level != "noAuthNoPriv":
        auth_key = auth.auth_key.get_secret_value()
    if auth.priv_key is not None and level == "authPriv":
        priv_key = auth.priv_key.get_secret_value()
    return UsmUserData(
        auth.user,
        authKey=auth_key,
        privKey=priv_key,
        authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol] if auth_key else USM_AUTH_NONE,
        privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol] if priv_key else USM_PRIV_NONE,
    )


@cache
def _shared_mib_view() -> Any:
    return MibViewController(MibBuilder())


async def get_scalars(session: SnmpSession, oids: list[str]) -> dict[str, SnmpValue | None]:
    """GET `oids` in one request; an OID the device does not have maps to None."""
    if not oids:
        return {}
    answer = await _request(
        session, get_cmd, *(ObjectType(ObjectIdentity(oid)) for oid in oids), lookupMib=False
    )
    var_binds = _checked(session, answer)
    if len(var_binds) != len(oids):
        raise DeviceError(f"{session.label}: asked for {len(oids)} OIDs, got {len(var_binds)}")
    return {
        oid: None if _is_absent(value) else to_python(value)
        for oid, (_, value) in zip(oids, var_binds, strict=True)
    }


async def walk_columns(
    session: SnmpSession, columns: list[str], max_repetitions: int = 25
) -> dict[str, dict[str, SnmpValue]]:
    """Walk several table columns together with GETBULK.

    Returns column OID -> {index suffix -> value}, e.g. ``{"1.3.6.1.2.1.31.1.1.1.1": {"2":
    "Gi0/0/1"}}``. Each column ends on its own, when the device answers past its subtree or
    with endOfMibView/noSuch*; the other columns keep walking. A column the device lacks maps to
    an empty dict.
    """
    roots: dict[str, Oid] = {column: parse_oid(column) for column in dict.fromkeys(columns)}
    rows: dict[str, dict[str, SnmpValue]] = {column: {} for column in roots}
    cursors: dict[str, Oid] = dict(roots)
    active = list(roots)
    while active:
        var_binds = await _bulk(session, [cursors[column] for column in active], max_repetitions)
        ended: set[str] = set()
        # GETBULK answers row by row, one varbind per requested column; an agent may truncate
        # the last row, so a column without a varbind here simply asks again from its cursor.
        for position, (name, value) in enumerate(var_binds):
            column = active[position % len(active)]
            if column in ended:
                continue
            oid = tuple(int(arc) for arc in name)
            if _is_absent(value) and rows[column] and _answered_beyond(var_binds, cursors[column]):
                # endOfMibView for this column while the same answer holds OIDs after its
                # cursor: a correct agent cannot do that; this one answered part of the table.
                raise DeviceError(
                    f"{session.label}: the device stopped answering column {column} after "
                    f"{format_oid(cursors[column])} ({type(value).__name__}) while other "
                    "columns went on: it answered part of the table"
                )
            if _is_absent(value) or oid[: len(roots[column])] != roots[column]:
                # A column dead from its first row (e.g. values the agent cannot encode) is
                # dropped and the others walk on.
                ended.add(column)
                continue
            if oid <= cursors[column]:
                raise DeviceError(
                    f"{session.label}: OID not increasing in column {column}: "
                    f"{format_oid(oid)} after {format_oid(cursors[column])}"
                )
            cursors[column] = oid
            rows[column][format_oid(oid[len(roots[column]) :])] = to_python(value)
        active = [column for column in active if column not in ended]
    return rows


def to_python(value: Any) -> SnmpValue:
    """Turn one pysnmp value into `int` (counters, gauges, ticks, integers) or `str`."""
    if isinstance(value, univ.ObjectIdentifier):
        return format_oid(tuple(value))
    if isinstance(value, IpAddress):
        return str(value.prettyPrint())
    if isinstance(value, univ.OctetString):
        return _decode_octets(bytes(value.asOctets()))
    if isinstance(value, univ.Integer):
        return int(value)
    raise DeviceError(f"unsupported SNMP value type {type(value).__name__}: {value!r}")


def parse_oid(oid: str) -> Oid:
    try:
        return tuple(int(arc) for arc in oid.strip(".").split("."))
    except ValueError as exc:
        raise ValueError(f"not a numeric OID: {oid!r}") from exc


def format_oid(oid: Oid) -> str:
    return ".".join(str(arc) for arc in oid)


def _decode_octets(raw: bytes) -> str:
    # DisplayStrings often carry a trailing NUL from C firmware; binary values (MACs, Meraki's
    # ifDescr) are not text at all, so they come back as hex the way pysnmp prints them.
    try:
        text = raw.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if all(char.isprintable() or char in "\t\r\n" for char in text):
        return text
    return "0x" + raw.hex()


def _answered_beyond(var_binds: Sequence[Any], cursor: Oid) -> bool:
    return any(
        not _is_absent(value) and tuple(int(arc) for arc in name) > cursor
        for name, value in var_binds
    )


def _is_absent(value: Any) -> bool:
    return isinstance(value, (NoSuchObject, NoSuchInstance, EndOfMibView))


async def _bulk(session: SnmpSession, start: list[Oid], max_repetitions: int) -> Sequence[Any]:
    var_types = (ObjectType(ObjectIdentity(format_oid(oid))) for oid in start)
    answer = await _request(session, bulk_cmd, 0, max_repetitions, *var_types, lookupMib=False)
    var_binds = _checked(session, answer)
    if not var_binds:
        # An empty answer would make the walk ask the same question forever.
        raise DeviceError(f"{session.label}: empty GETBULK response")
    return var_binds


async def _request(session: SnmpSession, command: Any, *args: Any, **options: Any) -> _Answer:
    try:
        answer: _Answer = await command(
            session.engine, session.auth, session.target, session.context, *args, **options
        )
    except PySnmpError as exc:
        raise DeviceError(f"{session.label}: {_redacted(session.device, str(exc))}") from exc
    return answer


def _checked(session: SnmpSession, answer: _Answer) -> Sequence[Any]:
    error_indication, error_status, error_index, var_binds = answer
    if isinstance(error_indication, _USM_FAILURES):
        raise DeviceError(
            f"{session.label}: SNMPv3 credentials refused ({error_indication}): check the user, "
            "protocols and keys"
        )
    if error_indication:
        # With SNMPv2c a wrong community is silently dropped, so it also arrives as a timeout.
        reason = _redacted(session.device, str(error_indication))
        # So does, with SNMPv3, a request the device cannot decrypt (priv key or protocol) or for
        # a context it does not serve. Unlike a dead device, it answered the engine discovery
        # before (pysnmp's v3 message processing keeps the engine ID it reported).
        if session.device.auth.version == "3" and isinstance(
            error_indication, errind.RequestTimedOut
        ):
            peer = session.target.get_transport_info()
            for model in session.engine.message_processing_subsystems.values():
                engine_info = getattr(model, "get_peer_engine_info", None)
                if engine_info is not None and engine_info(*peer)[0] is not None:
                    reason += (
                        ", though the device answered SNMPv3 discovery: check the priv protocol, "
                        "the priv key and the context (a device drops a request it cannot "
                        "decrypt, or for a context it does not serve, without a word)"
                    )
                    break
        raise DeviceUnreachable(f"{session.label}: {reason}")
    if error_status and int(error_status):
        # errorStatus is an INTEGER with named values: prettyPrint() says "tooBig", not "1".
        status = error_status.prettyPrint() if hasattr(error_status, "prettyPrint") else "error"
        where = ""
        if error_index and 0 < int(error_index) <= len(var_binds):
            where = f" at {format_oid(tuple(var_binds[int(error_index) - 1][0]))}"
        raise DeviceError(f"{session.label}: SNMP error {status} ({int(error_status)}){where}")
    return var_binds


def _redacted(device: DeviceSettings, text: str) -> str:
    # pysnmp's messages are its own business; whatever they quote, the community stays out.
    return redact(text, device.auth.secrets())
