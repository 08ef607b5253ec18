"""SNMPv2c/v3 GET of scalars and multi-column table walks, typed.

SNMPv2c is spoken here directly: a GET or GETBULK is a few BER bytes built by hand on a UDP socket
of its own, and the answer is read straight into Python values, because pysnmp decoding it through
pyasn1 objects cost about 60 us per varbind, most of a poll's CPU. SNMPv3 (USM keys, discovery,
encryption) goes through pysnmp 7 asyncio (`agent.snmp.v3`), which is only imported, and whose
engine is only made, when a v3 device needs it: a poller of SNMPv2c devices never loads pysnmp.
Everything speaks numeric OIDs (``lookupMib=False``), so the Pi never loads or compiles a MIB, and
hands back plain Python values (`int` or `str`), never pyasn1 objects. pysnmp *returns* its
failures instead of raising them; this module turns them into the agent's own errors at the
boundary: no answer becomes `DeviceUnreachable`, an SNMP error status becomes `DeviceError`.

Example:
    >>> async def uptime(device: DeviceSettings) -> int | str | None:  # doctest: +SKIP
    ...     async with open_session(device) as session:
    ...         values = await get_scalars(session, ["1.3.6.1.2.1.1.3.0"])  # sysUpTime.0
    ...     return values["1.3.6.1.2.1.1.3.0"]
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from agent.errors import DeviceError, DeviceUnreachable
from agent.redact import redact
from agent.settings import DeviceSettings

SnmpValue = int | str
Oid = tuple[int, ...]

# pysnmp's answer to one request: (errorIndication, errorStatus, errorIndex, varBinds).
_Answer = tuple[Any, Any, Any, Sequence[Any]]

# What a v2c request that got no answer reports, in pysnmp's words (its errind.requestTimedOut).
_TIMED_OUT = "No SNMP response received before timeout"
# RFC 3416 error-status values, named as pysnmp names them (rfc1905.errorStatus).
_ERROR_STATUS_NAMES = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
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
    """The SNMP engine for every poll of one round; close it with `close_engine`.

    pysnmp's engine (60-90 ms of CPU and a few MB; one per poll would also leak) is only made
    when a first SNMPv3 device needs it: SNMPv2c needs none."""
    return _Engine()


def close_engine(engine: Any) -> None:
    if isinstance(engine, _Engine):
        engine.close()
    else:
        engine.close_dispatcher()


class _Engine:
    """pysnmp's SnmpEngine, made on first use."""

    def __init__(self) -> None:
        self._engine: Any = None

    def get(self) -> Any:
        if self._engine is None:
            from agent.snmp import v3  # pysnmp: only now

            self._engine = v3.new_engine()
        return self._engine

    def close(self) -> None:
        # Without this the engine keeps its UDP socket and timer task alive after the round.
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None


@asynccontextmanager
async def open_session(device: DeviceSettings, engine: Any = None) -> AsyncIterator[SnmpSession]:
    """Open a session to `device` on `engine` (or on an engine of its own, closed on exit).

    Raises DeviceUnreachable if the address cannot be resolved.
    """
    own_engine = engine is None
    engine = new_engine() if own_engine else engine
    try:
        if device.auth.version == "2c":
            session = SnmpSession(
                device=device,
                engine=engine,
                auth=None,
                target=await _v2c_target(device),
                context=None,
            )
        else:
            from agent.snmp import v3  # pysnmp: only for SNMPv3 devices

            target = await v3.transport_target(device)
            if isinstance(engine, _Engine):
                engine = engine.get()
            session = SnmpSession(
                device=device,
                engine=engine,
                auth=v3.auth_data(device.auth),
                target=target,
                context=v3.context_data(device.auth),
            )
        yield session
    finally:
        if own_engine:
            close_engine(engine)


@dataclass(frozen=True)
class _V2cTarget:
    """Where and how patiently a v2c request goes (the fields of pysnmp's UdpTransportTarget)."""

    transport_address: tuple[str, int]
    timeout: float
    retries: int


async def _v2c_target(device: DeviceSettings) -> _V2cTarget:
    """The device's IPv4 UDP address, resolved as pysnmp's UdpTransportTarget resolves it."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            device.address,
            device.port,
            family=socket.AF_INET,
            type=socket.SOCK_DGRAM,
            proto=socket.IPPROTO_UDP,
        )
    except socket.gaierror as exc:
        reason = _redacted(
            device, f"Bad IPv4/UDP transport address {device.address}@{device.port}: {exc}"
        )
        raise DeviceUnreachable(f"{device.name} ({endpoint(device)}): {reason}") from exc
    host, port = infos[0][4][:2]
    return _V2cTarget((str(host), int(port)), device.timeout_s, device.retries)


async def get_scalars(session: SnmpSession, oids: list[str]) -> dict[str, SnmpValue | None]:
    """GET `oids` in one request; an OID the device does not have maps to None."""
    if not oids:
        return {}
    var_binds = await _request(session, _GET, [_oid_body(_oid(session, oid)) for oid in oids])
    if len(var_binds) != len(oids):
        raise DeviceError(f"{session.label}: asked for {len(oids)} OIDs, got {len(var_binds)}")
    return {
        oid: None if value.__class__ is _Absent else _value(value)
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
    # OIDs stay in their BER encoding (the bytes after tag and length) from answer to next
    # request: a prefix of the bytes is a prefix of the arcs, so the subtree test is a
    # startswith, and only a row's index after its column is decoded, for order and key.
    roots = {column: _oid_body(_oid(session, column)) for column in dict.fromkeys(columns)}
    rows: dict[str, dict[str, SnmpValue]] = {column: {} for column in roots}
    cursors: dict[str, bytes] = dict(roots)
    indexes: dict[str, Oid] = dict.fromkeys(roots, ())  # the cursor's arcs after root
    active = list(roots)
    # Each request asks for as many varbinds as the first: columns that ended leave their share
    # to the others, so the last long column is not walked 25 rows at a time.
    budget = max_repetitions * len(active)
    while active:
        width = len(active)
        repetitions = max(max_repetitions, budget // width)
        var_binds = await _bulk(session, [cursors[column] for column in active], repetitions)
        ended: set[str] = set()
        # GETBULK answers row by row, one varbind per requested column; an agent may truncate
        # the last row, so a column without a varbind here simply asks again from its cursor.
        for position, (oid, value) in enumerate(var_binds):
            column = active[position % width]
            if column in ended:
                continue
            absent = value.__class__ is _Absent
            if absent and rows[column] and _answered_beyond(var_binds, cursors[column]):
                # endOfMibView for this column while the same answer holds OIDs after its
                # cursor: a correct agent cannot do that; this one answered part of the table.
                raise DeviceError(
                    f"{session.label}: the device stopped answering column {column} after "
                    f"{_dotted(cursors[column])} ({value}) while other "
                    "columns went on: it answered part of the table"
                )
            root = roots[column]
            if absent or not oid.startswith(root):
                # A column dead from its first row (e.g. values the agent cannot encode) is
                # dropped and the others walk on.
                ended.add(column)
                continue
            tail = oid[len(root) :]
            index = tuple(tail) if tail.isascii() else _sub_identifiers(tail)
            if index <= indexes[column]:
                raise DeviceError(
                    f"{session.label}: OID not increasing in column {column}: "
                    f"{_dotted(oid)} after {_dotted(cursors[column])}"
                )
            cursors[column] = oid
            indexes[column] = index
            rows[column][".".join(map(str, index))] = _value(value)
        if ended:
            active = [column for column in active if column not in ended]
    return rows


def to_python(value: Any) -> SnmpValue:
    """Turn one pysnmp value into `int` (counters, gauges, ticks, integers) or `str` (imports
    pysnmp: `agent.snmp.v3.to_python`)."""
    from agent.snmp import v3

    return v3.to_python(value)


def parse_oid(oid: str) -> Oid:
    try:
        return tuple(int(arc) for arc in oid.strip(".").split("."))
    except ValueError as exc:
        raise ValueError(f"not a numeric OID: {oid!r}") from exc


def format_oid(oid: Oid) -> str:
    return ".".join(map(str, oid))


def _decode_octets(raw: bytes) -> str:
    # DisplayStrings often carry a trailing NUL from C firmware; binary values (MACs, Meraki's
    # ifDescr) are not text at all, so they come back as hex the way pysnmp prints them.
    try:
        text = raw.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    if text.isprintable() or text.translate(_WHITESPACE).isprintable():
        return text
    return "0x" + raw.hex()


_WHITESPACE = str.maketrans("", "", "\t\r\n")


def _answered_beyond(var_binds: Sequence[tuple[bytes, Any]], cursor: bytes) -> bool:
    after = _arcs(cursor)
    return any(value.__class__ is not _Absent and _arcs(oid) > after for oid, value in var_binds)


def _is_absent(value: Any) -> bool:
    """noSuchObject, noSuchInstance or endOfMibView as pysnmp gives them (imports pysnmp)."""
    from agent.snmp import v3

    return v3.is_absent(value)


class _Absent:
    """noSuchObject, noSuchInstance or endOfMibView in an answer (named as pysnmp names them)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


class _Unsupported:
    """A value of a type the agent does not read: an error only where a GET or walk needs it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _value(value: Any) -> SnmpValue:
    if value.__class__ is _Unsupported:
        raise DeviceError(value.message)
    return value  # type: ignore[no-any-return]


def _oid(session: SnmpSession, oid: str) -> Oid:
    try:
        parsed = parse_oid(oid)
    except ValueError as exc:
        raise DeviceError(f"{session.label}: {exc}") from None
    if len(parsed) < 2 or parsed[0] > 2 or (parsed[0] < 2 and parsed[1] >= 40):
        raise DeviceError(f"{session.label}: not a valid OID: {oid!r}")
    return parsed


async def _bulk(
    session: SnmpSession, start: list[bytes], max_repetitions: int
) -> list[tuple[bytes, Any]]:
    var_binds = await _request(session, _GETBULK, start, max_repetitions)
    if not var_binds:
        # An empty answer would make the walk ask the same question forever.
        raise DeviceError(f"{session.label}: empty GETBULK response")
    return var_binds


async def _request(
    session: SnmpSession, pdu: int, oids: Sequence[bytes], max_repetitions: int = 0
) -> list[tuple[bytes, Any]]:
    """One GET (`_GET`) or GETBULK (`_GETBULK`) of BER-encoded OIDs: the answer's (BER OID,
    value) pairs, each value an int, a str, an `_Absent` or an `_Unsupported`."""
    if session.device.auth.version == "2c":
        return list(_checked(session, await _v2c_request(session, pdu, oids, max_repetitions)))
    from agent.snmp import v3

    return await v3.request(session, pdu == _GETBULK, oids, max_repetitions)


# --- SNMPv2c on the wire (RFC 3416 PDUs in BER, RFC 1901 community messages) -----------------

_GET = 0xA0
_GETBULK = 0xA5
_RESPONSE = 0xA2
_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OBJECT_ID = 0x06
_IP_ADDRESS = 0x40
_OPAQUE = 0x44
# Counter32, Gauge32 (Unsigned32), TimeTicks, Counter64: unsigned whatever their top bit.
_UNSIGNED = frozenset((0x41, 0x42, 0x43, 0x46))
_ABSENT = {name: _Absent(name) for name in ("NoSuchObject", "NoSuchInstance", "EndOfMibView")}
_ABSENT_TAGS = {
    0x80: _ABSENT["NoSuchObject"],
    0x81: _ABSENT["NoSuchInstance"],
    0x82: _ABSENT["EndOfMibView"],
}
# A Null value (agents answer one for a value they do not have): pyasn1's Null is an
# OctetString, so `to_python` gave "" for it, never an error; with contents, pyasn1
# refused the whole datagram.
_NULL = 0x05
_TYPE_NAMES = {0x45: "NsapAddress", 0x47: "UInteger32"}
_VERSION_2C = b"\x02\x01\x01"  # INTEGER 1
_NULL_VALUE = b"\x05\x00"
_MAX_DATAGRAM = 65535
_request_ids = itertools.count(random.randrange(1, 2**30))


class _Malformed(Exception):
    """A datagram that is not a well-formed SNMPv2c message."""


async def _v2c_request(
    session: SnmpSession, pdu: int, oids: Sequence[bytes], max_repetitions: int
) -> _Answer:
    """Send one request, resending it `retries` times on silence; pysnmp's answer tuple.

    Like pysnmp, an answer counts when its request-id matches, whichever address it comes from
    (a router may answer from another of its addresses); anything else is ignored."""
    request_id = next(_request_ids) & 0x7FFFFFFF or 1
    community = session.device.auth.community.get_secret_value()
    try:
        community_bytes = community.encode("latin-1")  # as pyasn1 encodes a str
    except UnicodeEncodeError:
        community_bytes = community.encode()
    datagram = _message(community_bytes, pdu, request_id, max_repetitions, oids)
    target = session.target
    address = target.transport_address
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for _attempt in range(target.retries + 1):
            try:
                await loop.sock_sendto(sock, datagram, address)
            except OSError as exc:
                raise DeviceUnreachable(f"{session.label}: {exc.strerror or exc}") from None
            try:
                async with asyncio.timeout(target.timeout):
                    while True:
                        data, _ = await loop.sock_recvfrom(sock, _MAX_DATAGRAM)
                        answer = _response(data, request_id)
                        if answer is not None:
                            return answer
            except TimeoutError:
                continue
    return _TIMED_OUT, 0, 0, []


def _message(
    community: bytes, pdu: int, request_id: int, max_repetitions: int, oids: Sequence[bytes]
) -> bytes:
    # A GetRequest's error-status and error-index are 0; a GetBulkRequest's are non-repeaters
    # (0: every OID repeats) and max-repetitions.
    var_binds = b"".join(_tlv(_SEQUENCE, _tlv(_OBJECT_ID, oid) + _NULL_VALUE) for oid in oids)
    body = _integer(request_id) + _integer(0) + _integer(max_repetitions if pdu == _GETBULK else 0)
    body += _tlv(_SEQUENCE, var_binds)
    return _tlv(_SEQUENCE, _VERSION_2C + _tlv(_OCTET_STRING, community) + _tlv(pdu, body))


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes((tag, length)) + body
    if length < 0x100:
        return bytes((tag, 0x81, length)) + body
    return bytes((tag, 0x82, length >> 8, length & 0xFF)) + body


def _integer(value: int) -> bytes:
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid_body(oid: Oid) -> bytes:
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def _header(data: bytes, pos: int) -> tuple[int, int, int]:
    """The tag of the BER element at `pos`, and where its contents start and end."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise _Malformed
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    end = pos + length
    if end > len(data):
        raise _Malformed
    return tag, pos, end


def _response(data: bytes, request_id: int) -> _Answer | None:
    """The answer in `data` to request `request_id`, or None if it is not one. OIDs are left
    in BER (`_arcs` decodes one); on an error status they are decoded for the message."""
    try:
        tag, pos, end = _header(data, 0)
        if tag != _SEQUENCE or data[pos : pos + 3] != _VERSION_2C:
            return None
        tag, pos, community_end = _header(data, pos + 3)
        tag, pos, end = _header(data, community_end)
        if tag != _RESPONSE:
            return None
        numbers = []
        for _ in range(3):  # request-id, error-status, error-index
            tag, start, pos = _header(data, pos)
            if tag != _INTEGER:
                return None
            numbers.append(int.from_bytes(data[start:pos], "big", signed=True))
        if numbers[0] != request_id:
            return None
        tag, pos, end = _header(data, pos)
        if tag != _SEQUENCE:
            return None
        var_binds = []
        while pos < end:
            # SEQUENCE { OBJECT IDENTIFIER, value }, read inline for short lengths (< 128
            # bytes, nearly every varbind): this loop runs once per varbind of a poll.
            if data[pos] != _SEQUENCE:
                return None
            if data[pos + 1] < 0x80:
                pos += 2
            else:
                tag, pos, _ = _header(data, pos)
            if data[pos] != _OBJECT_ID:
                return None
            length = data[pos + 1]
            if length < 0x80:
                start = pos + 2
                pos = start + length
            else:
                tag, start, pos = _header(data, pos)
            if pos == start or data[pos - 1] & 0x80:
                raise _Malformed  # no arcs, or the last one unfinished
            oid = data[start:pos]
            tag = data[pos]
            length = data[pos + 1]
            if length < 0x80:
                start = pos + 2
                pos = start + length
            else:
                tag, start, pos = _header(data, pos)
            if pos > end:
                raise _Malformed
            var_binds.append((oid, _decoded(tag, data[start:pos])))
        if numbers[1]:
            # The error names the OID at error-index: decoded for its message.
            named = [(_arcs(oid), value) for oid, value in var_binds]
            return None, numbers[1], numbers[2], named
    except (IndexError, _Malformed):
        return None
    return None, 0, numbers[2], var_binds


def _arcs(raw: bytes) -> Oid:
    """The arcs of an OID from its BER contents."""
    if not raw:
        raise _Malformed
    arcs = tuple(raw) if raw.isascii() else _sub_identifiers(raw)
    first = arcs[0]  # the first two arcs share one sub-identifier
    return ((first // 40, first % 40) if first < 80 else (2, first - 80)) + arcs[1:]


def _sub_identifiers(raw: bytes) -> Oid:
    # Base 128, high bit set on every byte but a sub-identifier's last.
    if raw and raw[-1] & 0x80:
        raise _Malformed
    values = []
    value = 0
    for byte in raw:
        if byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            values.append((value << 7) | byte)
            value = 0
    return tuple(values)


def _dotted(oid: bytes) -> str:
    return format_oid(_arcs(oid))


def _decoded(tag: int, raw: bytes) -> Any:
    """One value as `to_python` would give it (`_Absent`, `_Unsupported` for the rest)."""
    if tag in _UNSIGNED:
        return int.from_bytes(raw, "big")
    if tag == _OCTET_STRING or tag == _OPAQUE:
        return _decode_octets(raw)
    if tag == _INTEGER:
        return int.from_bytes(raw, "big", signed=True)
    if tag == _OBJECT_ID:
        return format_oid(_arcs(raw))
    if tag == _IP_ADDRESS:
        if len(raw) != 4:
            raise _Malformed
        return socket.inet_ntoa(raw)
    if tag == _NULL:
        if raw:
            raise _Malformed
        return ""
    absent = _ABSENT_TAGS.get(tag)
    if absent is not None:
        return absent
    name = _TYPE_NAMES.get(tag, f"tag 0x{tag:02x}")
    return _Unsupported(f"unsupported SNMP value type {name}: {raw!r}")


def _checked(session: SnmpSession, answer: _Answer) -> Sequence[Any]:
    error_indication, error_status, error_index, var_binds = answer
    if error_indication:
        # With SNMPv2c a wrong community is silently dropped, so it also arrives as a timeout.
        reason = _redacted(session.device, str(error_indication))
        if session.device.auth.version == "3":
            from agent.snmp import v3

            if v3.credentials_refused(error_indication):
                raise DeviceError(
                    f"{session.label}: SNMPv3 credentials refused ({error_indication}): check "
                    "the user, protocols and keys"
                )
            # So does, with SNMPv3, a request the device cannot decrypt (priv key or protocol)
            # or for a context it does not serve; unlike a dead device, it answered the engine
            # discovery before, and the hint says so.
            reason += v3.discovery_hint(session, error_indication)
        raise DeviceUnreachable(f"{session.label}: {reason}")
    if error_status and int(error_status):
        # Named as pysnmp's errorStatus INTEGER prints it: "tooBig", not "1".
        code = int(error_status)
        status = _ERROR_STATUS_NAMES[code] if 0 <= code < len(_ERROR_STATUS_NAMES) else str(code)
        where = ""
        if error_index and 0 < int(error_index) <= len(var_binds):
            where = f" at {format_oid(tuple(var_binds[int(error_index) - 1][0]))}"
        raise DeviceError(f"{session.label}: SNMP error {status} ({int(error_status)}){where}")
    return var_binds


def _redacted(device: DeviceSettings, text: str) -> str:
    # pysnmp's messages are its own business; whatever they quote, the community stays out.
    return redact(text, device.auth.secrets())
