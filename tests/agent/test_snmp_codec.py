"""agent.snmp.walk's hand-written SNMPv2c codec, proven equal to pysnmp/pyasn1.

walk.py builds GET/GETBULK requests in BER and reads answers by hand (pyasn1 decoding was 60 % of
a poll's CPU). The old path, still the SNMPv3 one, is pysnmp's: pyasn1 decodes the message and
`walk.to_python` turns each value into `int` or `str`. That pair is the oracle here:

* answers encoded by pysnmp's own protocol API (every value type a device sends, edge cases by
  table and a few thousand seeded random varbinds) must decode to what the oracle gives;
* every request walk.py builds must decode with pyasn1 into the intended PDU, byte for byte the
  message pysnmp would build;
* malformed datagrams must be ignored or end in a DeviceError, never another exception;
* walks and GETs against real agents (snmpsim recordings, net-snmp's snmpd) must give the same
  tables as pysnmp's hlapi with the oracle's conversion.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pydantic import SecretStr
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
    walk_cmd,
)
from pysnmp.proto import api, rfc1905

from agent.errors import DeviceError
from agent.settings import DeviceSettings, SnmpAuth
from agent.snmp import walk
from agent.snmp.profile import load_profiles
from collector.localrun import LOOPBACK
from tests.fixtures.snmpd import snmpd  # noqa: F401 (fixture)
from tests.fixtures.snmpsim import SnmpSim

V2C: Any = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
V1: Any = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
SEED = 20261207
REQUEST_ID = 0x1234567

# --- the oracle -------------------------------------------------------------------------------


def _message(
    pdu: Any, var_binds: Sequence[tuple[Any, Any]], request_id: int, community: bytes, proto: Any
) -> bytes:
    proto.apiPDU.set_request_id(pdu, request_id)
    proto.apiPDU.set_varbinds(pdu, var_binds)
    message = proto.Message()
    proto.apiMessage.set_defaults(message)
    proto.apiMessage.set_community(message, community)
    proto.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def response(
    var_binds: Sequence[tuple[Any, Any]],
    request_id: int = REQUEST_ID,
    community: bytes = b"public",
    error_status: int = 0,
    error_index: int = 0,
    proto: Any = V2C,
) -> bytes:
    """A Response PDU as pysnmp encodes it."""
    pdu = proto.GetResponsePDU()
    proto.apiPDU.set_defaults(pdu)
    proto.apiPDU.set_error_status(pdu, error_status)
    proto.apiPDU.set_error_index(pdu, error_index)
    return _message(pdu, var_binds, request_id, community, proto)


def expected(value: Any) -> tuple[str, Any]:
    """What the old path made of one pyasn1 value."""
    if walk._is_absent(value):
        return "absent", type(value).__name__
    try:
        python = walk.to_python(value)
    except DeviceError:
        return "unsupported", type(value).__name__
    return type(python).__name__, python


def got(value: Any) -> tuple[str, Any]:
    """What the hand decoder made of one value, in the same terms."""
    if isinstance(value, walk._Absent):
        return "absent", value.name
    if isinstance(value, walk._Unsupported):
        return "unsupported", value.message.split()[4].rstrip(":")
    return type(value).__name__, value


def oracle(data: bytes) -> list[tuple[tuple[int, ...], tuple[str, Any]]]:
    message, rest = decoder.decode(data, asn1Spec=V2C.Message())
    assert not rest
    pdu = V2C.apiMessage.get_pdu(message)
    return [(tuple(name), expected(value)) for name, value in V2C.apiPDU.get_varbinds(pdu)]


def decoded(data: bytes, request_id: int = REQUEST_ID) -> list[tuple[tuple[int, ...], Any]]:
    answer = walk._response(data, request_id)
    assert answer is not None
    error_indication, error_status, _, var_binds = answer
    assert error_indication is None and error_status == 0
    out = []
    for oid, value in var_binds:
        assert isinstance(oid, bytes)
        arcs = walk._arcs(oid)
        # The OID stays in BER: the very bytes pyasn1 encodes for these arcs.
        ber = bytes(encoder.encode(V2C.ObjectIdentifier(arcs)))
        _, start, end = walk._header(ber, 0)
        assert oid == ber[start:end] == walk._oid_body(arcs)
        out.append((arcs, got(value)))
    return out


def assert_same(var_binds: Sequence[tuple[Any, Any]]) -> None:
    data = response(var_binds)
    assert decoded(data) == oracle(data)


# --- value generators -------------------------------------------------------------------------

INT32 = (-(2**31), -(2**31) + 1, -129, -128, -1, 0, 1, 127, 128, 255, 256, 2**31 - 2, 2**31 - 1)
UINT32 = (0, 1, 127, 128, 255, 256, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1)
UINT64 = (0, 1, 128, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1)
TEXTS = ("", "Gi0/0/1", "ge-0/0/0.0", "port 1\r\n", "a\tb", "Schulhaus Süd", "教室", "ssid 🛜")
ABSENT = (rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView)


def _number(rng: random.Random, edges: Sequence[int], low: int, high: int) -> int:
    if rng.random() < 0.3:
        return rng.choice(edges)
    # Every byte length equally likely, not just the largest.
    bits = rng.randint(1, (high - low).bit_length())
    return max(low, min(high, low + rng.getrandbits(bits) if low < 0 else rng.getrandbits(bits)))


def _arc(rng: random.Random) -> int:
    return (
        rng.choice((0, 1, 127, 128, 2**14, 2**32 - 1))
        if rng.random() < 0.2
        else _number(rng, UINT32, 0, 2**32 - 1)
    )


def random_oid(rng: random.Random) -> tuple[int, ...]:
    first = rng.randint(0, 2)
    second = rng.randint(0, 39) if first < 2 else _number(rng, (0, 39, 40, 47, 48, 175), 0, 2**20)
    length = rng.choice((0, 1, 2, 5, 10, 20)) if rng.random() < 0.9 else rng.randint(30, 128)
    return (first, second, *(_arc(rng) for _ in range(length)))


def random_octets(rng: random.Random) -> bytes:
    shape = rng.randrange(8)
    if shape == 0:
        return b""
    if shape == 1:  # a DisplayString, maybe NUL-terminated as C firmware sends it
        text = "".join(rng.choice("abcXYZ019 -_/.:\t\r\n") for _ in range(rng.randint(1, 40)))
        return text.encode() + b"\x00" * rng.choice((0, 0, 1, 3))
    if shape == 2:  # UTF-8 of all kinds, sometimes with control or unprintable characters
        chars = "aé€教🛜\u00a0\u200b\x7f\x00\x1b"
        return "".join(rng.choice(chars) for _ in range(rng.randint(1, 30))).encode()
    if shape == 3:  # long, so its length takes two bytes
        return rng.choice((b"x", b"\xff", b"\xc3\xa9")) * rng.randint(128, 700)
    if shape == 4:  # a MAC address
        return rng.randbytes(6)
    return rng.randbytes(rng.choice((1, 2, 4, 16, rng.randint(0, 400))))


def random_value(rng: random.Random) -> Any:
    kind = rng.randrange(14)
    if kind == 0:
        return V2C.Integer32(_number(rng, INT32, -(2**31), 2**31 - 1))
    if kind in (1, 2):
        return V2C.OctetString(random_octets(rng))
    if kind == 3:
        return V2C.ObjectIdentifier(random_oid(rng))
    if kind == 4:
        return V2C.IpAddress(rng.randbytes(4))
    if kind == 5:
        return V2C.Counter32(_number(rng, UINT32, 0, 2**32 - 1))
    if kind == 6:
        return V2C.Gauge32(_number(rng, UINT32, 0, 2**32 - 1))
    if kind == 7:
        return V2C.TimeTicks(_number(rng, UINT32, 0, 2**32 - 1))
    if kind == 8:
        return V2C.Counter64(_number(rng, UINT64, 0, 2**64 - 1))
    if kind == 9:
        return V2C.Opaque(random_octets(rng))
    if kind == 10:
        return V2C.Unsigned32(_number(rng, UINT32, 0, 2**32 - 1))
    if kind == 11:
        return V2C.Null()
    return rng.choice(ABSENT)


# --- 1. answers: the hand decoder against pyasn1 + to_python -----------------------------------

EDGES: list[tuple[str, Any]] = [
    *((f"Integer32 {n}", V2C.Integer32(n)) for n in INT32),
    ("Integer (rfc1902) -5", V2C.Integer(-5)),
    ("OctetString empty", V2C.OctetString(b"")),
    ("OctetString text", V2C.OctetString(b"GigabitEthernet0/0/1")),
    ("OctetString trailing NUL", V2C.OctetString(b"eth0\x00")),
    ("OctetString only NULs", V2C.OctetString(b"\x00\x00")),
    ("OctetString inner NUL", V2C.OctetString(b"a\x00b")),
    ("OctetString CRLF tab", V2C.OctetString(b"line 1\r\nline\t2")),
    ("OctetString control char", V2C.OctetString(b"bell\x07")),
    ("OctetString DEL", V2C.OctetString(b"x\x7f")),
    ("OctetString UTF-8", V2C.OctetString("Schulhaus Süd 教室 🛜".encode())),
    ("OctetString NBSP", V2C.OctetString("a\u00a0b".encode())),
    ("OctetString latin-1", V2C.OctetString("Süd".encode("latin-1"))),
    ("OctetString binary MAC", V2C.OctetString(bytes.fromhex("a00f371a0880"))),
    ("OctetString 0xff", V2C.OctetString(b"\xff")),
    ("OctetString 127 bytes", V2C.OctetString(b"y" * 127)),
    ("OctetString 128 bytes", V2C.OctetString(b"y" * 128)),
    ("OctetString 255 bytes", V2C.OctetString(b"z" * 255)),
    ("OctetString 256 bytes", V2C.OctetString(b"z" * 256)),
    ("OctetString 300 bytes binary", V2C.OctetString(bytes(range(256)) + b"\x00" * 44)),
    ("OctetString 4000 bytes", V2C.OctetString(b"w" * 4000)),
    ("Bits", V2C.Bits(b"\x80\x01")),
    ("OID zeroDotZero", V2C.ObjectIdentifier((0, 0))),
    ("OID sysObjectID", V2C.ObjectIdentifier((1, 3, 6, 1, 4, 1, 9, 1, 1116))),
    ("OID arc 127 128", V2C.ObjectIdentifier((1, 3, 127, 128, 16383, 16384))),
    ("OID arc 2^32-1", V2C.ObjectIdentifier((1, 3, 6, 1, 2**32 - 1, 2**31))),
    ("OID 2.x", V2C.ObjectIdentifier((2, 5, 4, 3))),
    ("OID 2.47 first byte 127", V2C.ObjectIdentifier((2, 47, 1))),
    ("OID 2.48 first arc multi-byte", V2C.ObjectIdentifier((2, 48, 1))),
    ("OID 2.999", V2C.ObjectIdentifier((2, 999, 3))),
    ("OID 1.39", V2C.ObjectIdentifier((1, 39))),
    ("OID 128 arcs", V2C.ObjectIdentifier((1, 3, *range(126)))),
    ("OID 128 big arcs", V2C.ObjectIdentifier((1, 3, *([2**32 - 1] * 126)))),
    ("IpAddress 0.0.0.0", V2C.IpAddress("0.0.0.0")),
    ("IpAddress 10.1.2.3", V2C.IpAddress("10.1.2.3")),
    ("IpAddress 255.255.255.255", V2C.IpAddress("255.255.255.255")),
    *((f"Counter32 {n}", V2C.Counter32(n)) for n in UINT32),
    *((f"Gauge32 {n}", V2C.Gauge32(n)) for n in UINT32),
    ("Unsigned32 2^32-1", V2C.Unsigned32(2**32 - 1)),
    *((f"TimeTicks {n}", V2C.TimeTicks(n)) for n in UINT32),
    *((f"Counter64 {n}", V2C.Counter64(n)) for n in UINT64),
    ("Opaque empty", V2C.Opaque(b"")),
    ("Opaque float", V2C.Opaque(bytes.fromhex("9f780441200000"))),
    ("Opaque text", V2C.Opaque(b"text")),
    ("Null", V2C.Null()),
    ("noSuchObject", rfc1905.noSuchObject),
    ("noSuchInstance", rfc1905.noSuchInstance),
    ("endOfMibView", rfc1905.endOfMibView),
]


@pytest.mark.parametrize("value", [value for _, value in EDGES], ids=[name for name, _ in EDGES])
def test_each_value_type_decodes_as_pyasn1_and_to_python(value: Any) -> None:
    var_binds = [((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 7), value), ((1, 3, 6, 1, 2, 1, 1, 1, 0), value)]
    data = response(var_binds)
    ours = decoded(data)
    assert ours == oracle(data)
    assert len(ours) == 2


def test_value_edges_in_one_answer_too() -> None:
    # All of them in one message: its lengths take the long form, varbinds follow each other.
    var_binds = [((1, 3, 6, 1, 4, 1, 9999, i), value) for i, (_, value) in enumerate(EDGES)]
    data = response(var_binds)
    assert len(data) > 0x100
    assert decoded(data) == oracle(data)


NAMES = [
    (1, 3, 6, 1, 2, 1, 1, 3, 0),
    (0, 0),
    (1, 39, 0),
    (2, 47),
    (2, 48, 0),
    (2, 2**32 - 1 - 80, 5),
    (1, 3, 6, 1, 4, 1, 2**32 - 1, 128, 0),
    (1, 3, 6, 1, 4, 1, 14179, 2, 2, 1, 1, 3, 160, 15, 55, 26, 8, 128),
    (1, 3, *([300] * 126)),
]


@pytest.mark.parametrize("name", NAMES, ids=lambda name: ".".join(map(str, name[:12])))
def test_varbind_names_decode_as_pyasn1(name: tuple[int, ...]) -> None:
    assert_same([(name, V2C.Integer32(1)), ((*name, 1), V2C.OctetString(b"x"))])


def test_seeded_random_answers_decode_as_pyasn1() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    count = 0
    while count < 4000:
        var_binds = [(random_oid(rng), random_value(rng)) for _ in range(rng.randint(1, 60))]
        request_id = _number(rng, INT32, 0, 2**31 - 1)
        data = response(
            var_binds, request_id=request_id, community=rng.randbytes(rng.randint(0, 9))
        )
        ours = decoded(data, request_id)
        assert ours == oracle(data), var_binds
        seen.update(kind for _, (kind, _) in ours)
        count += len(var_binds)
    assert seen == {"int", "str", "absent"}  # Null included: to_python gave "" for it


def test_the_old_octet_rule_on_random_bytes() -> None:
    # to_python's _decode_octets was rewritten (53f3ae6); the rule before it, verbatim:
    def old(raw: bytes) -> str:
        try:
            text = raw.rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw.hex()
        if all(char.isprintable() or char in "\t\r\n" for char in text):
            return text
        return "0x" + raw.hex()

    rng = random.Random(SEED + 1)
    samples = [random_octets(rng) for _ in range(3000)]
    samples += [bytes([b]) for b in range(256)] + [b"a" + bytes([b]) + b"\x00" for b in range(256)]
    samples += [chr(c).encode() for c in range(0x80, 0x3000, 7)]
    assert [walk._decode_octets(raw) for raw in samples] == [old(raw) for raw in samples]


def test_an_error_status_comes_back_named_with_its_oid() -> None:
    var_binds = [((1, 3, 6, 1, 2, 1, 1, 1, 0), V2C.Null()), ((1, 3, 6, 1, 9), V2C.Null())]
    data = response(var_binds, error_status=5, error_index=2)
    answer = walk._response(data, REQUEST_ID)
    assert answer is not None
    with pytest.raises(DeviceError, match=r"SNMP error genErr \(5\) at 1\.3\.6\.1\.9$"):
        walk._checked(_session(), answer)


# --- 1b. requests: what walk.py sends, decoded by pyasn1 -----------------------------------------

REQUEST_OIDS = [
    ["1.3.6.1.2.1.1.3.0"],
    ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"],
    ["1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.31.1.1.1.6.4294967295"],
    ["2.999.1", "0.0", "1.3.6.1.4.1.14179.2.2.1.1.3.160.15.55.26.8.128"],
    [f"1.3.6.1.4.1.9999.{i}.{'.'.join(['4294967295'] * 20)}" for i in range(12)],  # > 1 kB
]


def _pdu(data: bytes) -> tuple[Any, Any]:
    message, rest = decoder.decode(data, asn1Spec=V2C.Message())
    assert not rest
    assert int(V2C.apiMessage.get_version(message)) == 1  # SNMPv2c
    return message, V2C.apiMessage.get_pdu(message)


def _names(pdu: Any) -> list[str]:
    var_binds = V2C.apiPDU.get_varbinds(pdu)
    assert all(value.tagSet == V2C.Null.tagSet for _, value in var_binds)
    return [walk.format_oid(tuple(name)) for name, _ in var_binds]


@pytest.mark.parametrize("oids", REQUEST_OIDS, ids=lambda oids: f"{len(oids)} OIDs")
@pytest.mark.parametrize("request_id", [1, 127, 128, 65535, 2**31 - 1], ids=lambda r: f"id {r}")
@pytest.mark.parametrize("community", [b"public", b"", "Süd".encode("latin-1"), b"c" * 200])
def test_get_request_is_the_pdu_pysnmp_builds(
    oids: list[str], request_id: int, community: bytes
) -> None:
    bodies = [walk._oid_body(walk.parse_oid(oid)) for oid in oids]
    data = walk._message(community, walk._GET, request_id, 0, bodies)
    message, pdu = _pdu(data)
    assert pdu.tagSet == V2C.GetRequestPDU.tagSet
    assert bytes(V2C.apiMessage.get_community(message)) == community
    assert int(V2C.apiPDU.get_request_id(pdu)) == request_id
    assert int(V2C.apiPDU.get_error_status(pdu)) == int(V2C.apiPDU.get_error_index(pdu)) == 0
    assert _names(pdu) == oids
    get = V2C.GetRequestPDU()
    V2C.apiPDU.set_defaults(get)
    same = [(walk.parse_oid(oid), V2C.Null()) for oid in oids]
    assert data == _message(get, same, request_id, community, V2C)


@pytest.mark.parametrize("oids", REQUEST_OIDS, ids=lambda oids: f"{len(oids)} OIDs")
@pytest.mark.parametrize("repetitions", [1, 3, 25, 127, 128, 275, 2**16], ids=lambda r: f"max {r}")
def test_getbulk_request_is_the_pdu_pysnmp_builds(oids: list[str], repetitions: int) -> None:
    bodies = [walk._oid_body(walk.parse_oid(oid)) for oid in oids]
    data = walk._message(b"public", walk._GETBULK, 0x7FFFFFFF, repetitions, bodies)
    _, pdu = _pdu(data)
    assert pdu.tagSet == V2C.GetBulkRequestPDU.tagSet
    assert int(V2C.apiBulkPDU.get_non_repeaters(pdu)) == 0
    assert int(V2C.apiBulkPDU.get_max_repetitions(pdu)) == repetitions
    assert int(V2C.apiBulkPDU.get_request_id(pdu)) == 0x7FFFFFFF
    assert _names(pdu) == oids
    bulk = V2C.GetBulkRequestPDU()
    V2C.apiBulkPDU.set_defaults(bulk)
    V2C.apiBulkPDU.set_max_repetitions(bulk, repetitions)
    same = [(walk.parse_oid(oid), V2C.Null()) for oid in oids]
    assert data == _message(bulk, same, 0x7FFFFFFF, b"public", V2C)


# --- 1c. malformed answers --------------------------------------------------------------------


def _session(name: str = "dev") -> walk.SnmpSession:
    device = DeviceSettings(
        name=name, address=LOOPBACK, port=161, auth=SnmpAuth(community=SecretStr("public"))
    )
    return walk.SnmpSession(device=device, engine=None, auth=None, target=None, context=None)


def _read(data: bytes, request_id: int = REQUEST_ID) -> list[Any] | None:
    """What a poll makes of `data`: None (ignored), or its values; DeviceError is a clear no."""
    answer = walk._response(data, request_id)
    if answer is None:
        return None
    try:
        var_binds = walk._checked(_session(), answer)
        return [
            value if isinstance(value, walk._Absent) else walk._value(value)
            for _, value in var_binds
        ]
    except DeviceError:
        return []


VALID = response(
    [
        ((1, 3, 6, 1, 2, 1, 1, 1, 0), V2C.OctetString(b"Cisco IOS Software " * 20)),
        ((1, 3, 6, 1, 2, 1, 1, 2, 0), V2C.ObjectIdentifier((1, 3, 6, 1, 4, 1, 9, 1, 1116))),
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), V2C.TimeTicks(857980)),
        ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), V2C.IpAddress("10.0.0.1")),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), V2C.Counter64(2**64 - 1)),
    ]
)


def _with_tag(data: bytes, old: int, new: int) -> bytes:
    at = data.index(bytes((old,)))
    return data[:at] + bytes((new,)) + data[at + 1 :]


MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("one byte", b"\x30"),
    ("garbage text", b"GET / HTTP/1.1\r\n\r\n"),
    ("zeros", bytes(64)),
    ("outer tag not SEQUENCE", b"\x31" + VALID[1:]),
    ("PDU is a GetRequest", _with_tag(VALID, 0xA2, 0xA0)),
    ("PDU is a Report", _with_tag(VALID, 0xA2, 0xA8)),
    ("PDU is a Trap", _with_tag(VALID, 0xA2, 0xA7)),
    ("PDU is a GetBulk", _with_tag(VALID, 0xA2, 0xA5)),
    ("wrong request-id", response([((1, 3, 6), V2C.Integer32(1))], request_id=REQUEST_ID + 1)),
    ("SNMPv1 message", response([((1, 3, 6), V1.Integer(1))], proto=V1)),
    ("version 3 number", VALID[:4] + b"\x03" + VALID[5:]),
    ("outer length beyond the datagram", VALID[:2] + bytes((VALID[2], VALID[3] + 1)) + VALID[4:]),
    ("long length of 5 bytes", b"\x30\x85\x00\x00\x00\x00\x10" + bytes(16)),
    ("indefinite length", b"\x30\x80" + VALID[4:] + b"\x00\x00"),
    (
        "IpAddress of 5 bytes",
        response([((1, 3, 6), V2C.OctetString(b"12345"))]).replace(b"\x04\x05", b"\x40\x05"),
    ),
    (
        "OID value empty",
        response([((1, 3, 6), V2C.OctetString(b""))]).replace(b"\x04\x00", b"\x06\x00"),
    ),
    (
        "OID value unfinished",
        response([((1, 3, 6), V2C.OctetString(b"+\x81"))]).replace(
            b"\x04\x02+\x81", b"\x06\x02+\x81"
        ),
    ),
    (
        "varbind name unfinished",
        response([((1, 3, 6, 200), V2C.Integer32(1))]).replace(
            b"\x06\x04+\x06\x81\x48", b"\x06\x03+\x06\x81\x02"
        ),
    ),
    (
        "varbind name not an OID",
        response([((1, 3, 6), V2C.Integer32(1))]).replace(b"\x06\x02+\x06", b"\x04\x02+\x06"),
    ),
    (
        "varbind not a SEQUENCE",
        response([((1, 3, 6), V2C.Integer32(1))]).replace(b"\x30\x07\x06", b"\x31\x07\x06"),
    ),
    ("request-id not an INTEGER", _with_tag(VALID, 0x02, 0x04)),
    (
        "value beyond the varbind list",
        response([((1, 3, 6), V2C.OctetString(b"abc"))]).replace(b"\x04\x03abc", b"\x04\x05abc"),
    ),
]


@pytest.mark.parametrize("data", [data for _, data in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_answers_are_ignored(data: bytes) -> None:
    assert walk._response(data, REQUEST_ID) is None


def test_malformed_cases_start_from_well_formed_ones() -> None:
    # Each case differs from a message the decoder reads: it is its defect that is ignored.
    assert _read(VALID) is not None
    assert _read(response([((1, 3, 6), V2C.Integer32(1))])) == [1]


@pytest.mark.parametrize("error_status", [1, 2, 18, 19, 99, 2**31 - 1, -1], ids=str)
def test_any_error_status_is_a_clear_device_error(error_status: int) -> None:
    data = response([((1, 3, 6), V2C.Null())], error_status=error_status, error_index=1)
    answer = walk._response(data, REQUEST_ID)
    assert answer is not None
    with pytest.raises(DeviceError, match=r"SNMP error .* at 1\.3\.6$"):
        walk._checked(_session(), answer)


def test_every_truncation_is_ignored() -> None:
    assert _read(VALID) is not None
    for cut in range(len(VALID)):
        assert walk._response(VALID[:cut], REQUEST_ID) is None, cut


def test_seeded_garbage_and_mutations_never_raise() -> None:
    rng = random.Random(SEED + 2)
    messages = [VALID]
    for _ in range(40):
        var_binds = [(random_oid(rng), random_value(rng)) for _ in range(rng.randint(1, 8))]
        messages.append(response(var_binds))
    outcomes = {"ignored": 0, "error": 0, "values": 0}
    for _ in range(6000):
        shape = rng.randrange(4)
        if shape == 0:
            data = rng.randbytes(rng.randint(0, 200))
        elif shape == 1:  # random bytes behind a plausible message header
            data = b"\x30" + bytes((rng.randint(0, 255),)) + _VERSION_AND_COMMUNITY
            data += rng.randbytes(rng.randint(0, 100))
        else:  # a real answer with a few bytes changed, dropped or inserted
            data = bytearray(rng.choice(messages))
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(data))
                edit = rng.randrange(3)
                if edit == 0:
                    data[at] = rng.randrange(256)
                elif edit == 1:
                    del data[at]
                else:
                    data.insert(at, rng.randrange(256))
            data = bytes(data)
        read = _read(data)  # anything but DeviceError escaping fails the test
        outcomes["ignored" if read is None else "error" if read == [] else "values"] += 1
    # The mutations reach every outcome: some still read, some ignored.
    assert outcomes["ignored"] > 1000 and outcomes["values"] > 50, outcomes


_VERSION_AND_COMMUNITY = b"\x02\x01\x01\x04\x06public"


def test_mutated_answers_pyasn1_reads_decode_as_it_does() -> None:
    # Where a changed byte still leaves a Response pyasn1 decodes in full, ours must agree.
    rng = random.Random(SEED + 3)
    agreed = 0
    for _ in range(1000):
        var_binds = [(random_oid(rng), random_value(rng)) for _ in range(rng.randint(1, 6))]
        data = bytearray(response(var_binds))
        at = rng.randrange(len(data))
        data[at] = rng.randrange(256)
        try:
            reference = oracle(bytes(data))
            message, _ = decoder.decode(bytes(data), asn1Spec=V2C.Message())
            pdu = V2C.apiMessage.get_pdu(message)
            request_id = int(V2C.apiPDU.get_request_id(pdu))
            fine = (
                pdu.tagSet == V2C.GetResponsePDU.tagSet
                and int(V2C.apiPDU.get_error_status(pdu)) == 0
                and int(V2C.apiMessage.get_version(message)) == 1
            )
        except Exception:
            continue
        if not fine:
            continue
        answer = walk._response(bytes(data), request_id)
        if answer is None:
            continue  # stricter than pyasn1: ignored, never wrong
        assert [(walk._arcs(o), got(v)) for o, v in answer[3]] == reference, bytes(data).hex()
        agreed += 1
    assert agreed > 200


# --- 1d. the same codec on a socket: a pysnmp-encoded agent, and hlapi as the old path -----------

COLUMNS = {  # column -> rows, enough for several GETBULKs at max-repetitions 5
    "1.3.6.1.4.1.9999.2.1": 40,
    "1.3.6.1.4.1.9999.2.2": 7,
    "1.3.6.1.4.1.9999.2.3": 0,
    "1.3.6.1.4.1.9999.2.4": 100,
}
VALUE_BASE = (1, 3, 6, 1, 4, 1, 9999, 1)


def _fake_mib() -> list[tuple[tuple[int, ...], Any]]:
    rng = random.Random(SEED + 4)
    mib = [((*VALUE_BASE, i, 0), value) for i, (_, value) in enumerate(EDGES)]
    for column, rows in COLUMNS.items():
        root = walk.parse_oid(column)
        for row in range(rows):
            index = (row + 1,) if row % 3 else (row + 1, 2**32 - 1, 128)
            value = random_value(rng)
            while walk._is_absent(value):  # an agent has no row holding noSuch*/endOfMibView
                value = random_value(rng)
            mib.append(((*root, *index), value))
    mib.append(((1, 3, 6, 1, 4, 1, 9999, 3, 0), V2C.Integer32(3)))  # after the last column
    return sorted(mib, key=lambda item: item[0])


@dataclass
class FakeAgent:
    """An SNMPv2c agent on 127.0.0.1 whose answers pysnmp encodes; it keeps every request."""

    mib: list[tuple[tuple[int, ...], Any]]
    port: int = 0
    requests: list[tuple[Any, Any]] = field(default_factory=list)

    def answer(self, data: bytes) -> bytes:
        message, _ = decoder.decode(data, asn1Spec=V2C.Message())
        pdu = V2C.apiMessage.get_pdu(message)
        self.requests.append((message, pdu))
        names = [tuple(name) for name, _ in V2C.apiPDU.get_varbinds(pdu)]
        out: list[tuple[tuple[int, ...], Any]] = []
        if pdu.tagSet == V2C.GetRequestPDU.tagSet:
            values = dict(self.mib)
            out = [(name, values.get(name, rfc1905.noSuchObject)) for name in names]
        else:  # GETBULK or GETNEXT: the next OID of each, max-repetitions rows (non-repeaters 0)
            bulk = pdu.tagSet == V2C.GetBulkRequestPDU.tagSet
            rows = int(V2C.apiBulkPDU.get_max_repetitions(pdu)) if bulk else 1
            for _ in range(rows):
                for position, cursor in enumerate(names):
                    after = [item for item in self.mib if item[0] > cursor][:1]
                    out.append(after[0] if after else (cursor, rfc1905.endOfMibView))
                    names[position] = out[-1][0]
        request_id = int(V2C.apiPDU.get_request_id(pdu))
        community = bytes(V2C.apiMessage.get_community(message))
        return response(out, request_id=request_id, community=community)


class _AgentProtocol(asyncio.DatagramProtocol):
    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.agent.answer(data), addr)


@asynccontextmanager
async def fake_agent() -> AsyncIterator[FakeAgent]:
    agent = FakeAgent(_fake_mib())
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _AgentProtocol(agent), local_addr=(LOOPBACK, 0)
    )
    agent.port = transport.get_extra_info("sockname")[1]
    try:
        yield agent
    finally:
        transport.close()


def _device(port: int, community: str = "public", name: str = "fake") -> DeviceSettings:
    return DeviceSettings(
        name=name,
        address=LOOPBACK,
        port=port,
        auth=SnmpAuth(community=SecretStr(community)),
        timeout_s=2.0,
        retries=1,
    )


@asynccontextmanager
async def hlapi(device: DeviceSettings) -> AsyncIterator[tuple[Any, ...]]:
    """pysnmp's own engine, credentials, target and context for `device`: the old path."""
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(
            (device.address, device.port), timeout=device.timeout_s, retries=device.retries
        )
        auth = CommunityData(device.auth.community.get_secret_value(), mpModel=1)
        yield engine, auth, target, ContextData()
    finally:
        engine.close_dispatcher()


async def old_get(pysnmp: tuple[Any, ...], oids: list[str]) -> dict[str, Any]:
    """get_scalars as it was: hlapi get_cmd, absent -> None, else to_python (or its error)."""
    answer = await get_cmd(*pysnmp, *(ObjectType(ObjectIdentity(o)) for o in oids), lookupMib=False)
    error_indication, error_status, _, var_binds = answer
    assert not error_indication and not int(error_status), answer
    out: dict[str, Any] = {}
    for oid, (_, value) in zip(oids, var_binds, strict=True):
        try:
            out[oid] = None if walk._is_absent(value) else walk.to_python(value)
        except DeviceError:
            out[oid] = DeviceError
    return out


async def new_get(session: walk.SnmpSession, oids: list[str]) -> dict[str, Any]:
    try:
        return await walk.get_scalars(session, oids)
    except DeviceError as exc:
        assert "unsupported SNMP value type" in str(exc)
        return dict.fromkeys(oids, DeviceError)


async def old_walk(pysnmp: tuple[Any, ...], column: str) -> dict[str, Any]:
    """One column walked by hlapi (GETNEXT), values through to_python."""
    root = walk.parse_oid(column)
    rows: dict[str, Any] = {}
    async for error_indication, error_status, _, var_binds in walk_cmd(
        *pysnmp, ObjectType(ObjectIdentity(column)), lexicographicMode=False, lookupMib=False
    ):
        assert not error_indication and not int(error_status), error_indication
        for name, value in var_binds:
            arcs = tuple(name)
            if walk._is_absent(value) or arcs[: len(root)] != root:
                return rows
            rows[walk.format_oid(arcs[len(root) :])] = walk.to_python(value)
    return rows


async def test_get_of_every_value_type_equals_hlapi() -> None:
    async with fake_agent() as agent, walk.open_session(_device(agent.port)) as session:
        oids = [walk.format_oid((*VALUE_BASE, i, 0)) for i in range(len(EDGES))]
        oids.append("1.3.6.1.4.1.9999.1.99999.0")  # not in the agent: noSuchObject
        async with hlapi(session.device) as pysnmp:
            for name, oid in zip([*(n for n, _ in EDGES), "missing"], oids, strict=True):
                assert await new_get(session, [oid]) == await old_get(pysnmp, [oid]), name
            # All in one request (minus values neither path reads), in order.
            old = await old_get(pysnmp, oids)
            readable = [oid for oid in oids if old[oid] is not DeviceError]
            assert await walk.get_scalars(session, readable) == await old_get(pysnmp, readable)
    request = agent.requests[-2]  # ours; the last one is hlapi's
    assert request[1].tagSet == V2C.GetRequestPDU.tagSet
    assert _names(request[1]) == readable


async def test_walk_requests_and_tables_equal_hlapi() -> None:
    columns = list(COLUMNS)
    async with fake_agent() as agent, walk.open_session(_device(agent.port)) as session:
        ours = await walk.walk_columns(session, columns, max_repetitions=5)
        requests = list(agent.requests)
        async with hlapi(session.device) as pysnmp:
            theirs = {column: await old_walk(pysnmp, column) for column in columns}
    assert ours == theirs
    assert [len(ours[column]) for column in columns] == list(COLUMNS.values())
    # Every request a GETBULK for the walking columns from their cursors, under one community,
    # non-repeaters 0, max-repetitions keeping the first request's budget of 5 x 4 varbinds.
    assert len(requests) >= 100 // 5 // 4
    ids = []
    for message, pdu in requests:
        assert pdu.tagSet == V2C.GetBulkRequestPDU.tagSet
        assert bytes(V2C.apiMessage.get_community(message)) == b"public"
        assert int(V2C.apiBulkPDU.get_non_repeaters(pdu)) == 0
        width = len(V2C.apiPDU.get_varbinds(pdu))
        assert int(V2C.apiBulkPDU.get_max_repetitions(pdu)) == max(5, 5 * len(columns) // width)
        ids.append(int(V2C.apiPDU.get_request_id(pdu)))
    assert len(set(ids)) == len(ids)
    assert _names(requests[0][1]) == columns
    # After the first, each request goes on from the last row each column got.
    rows = {f"{column}.{index}" for column in columns for index in ours[column]}
    assert all(set(_names(pdu)) <= rows for _, pdu in requests[1:])
    assert _names(requests[-1][1])[0].startswith(columns[3] + ".")  # the longest ends last


# --- 2. real agents: walk.py's tables against hlapi's ----------------------------------------

RECORDINGS = {  # recording -> its profile (whose wireless columns are walked too)
    "iosxe": "cisco_ios",
    "procurve_2520": "hp_procurve",
    "routeros": "mikrotik",
    "ciscowlc_cbw240ac": "cisco_wlc",
    "meraki-cloud-controller": "meraki_cloud",  # binary values (MACs in the index and values)
}
SCALARS = [
    "1.3.6.1.2.1.1.1.0",  # sysDescr
    "1.3.6.1.2.1.1.2.0",  # sysObjectID
    "1.3.6.1.2.1.1.3.0",  # sysUpTime
    "1.3.6.1.2.1.1.99.0",  # no such object
    "1.3.6.1.2.1.2.2.1.2.99999",  # no such instance
]


def _profile_columns(profile_name: str) -> list[str]:
    profiles = load_profiles([])
    profile = profiles.get(profile_name)
    columns = profiles.interfaces(profile).columns()
    for table in (profile.aps, profile.ssids):
        if table is not None:
            columns += table.columns()
    return list(dict.fromkeys(columns))


@pytest.mark.parametrize("recording", list(RECORDINGS))
async def test_recording_walks_and_gets_equal_hlapi(snmpsim: SnmpSim, recording: str) -> None:
    columns = _profile_columns(RECORDINGS[recording])
    device = snmpsim.device(recording)
    async with walk.open_session(device) as session, hlapi(device) as pysnmp:
        ours = await walk.walk_columns(session, columns)
        theirs = {column: await old_walk(pysnmp, column) for column in columns}
        assert ours == theirs
        assert await walk.get_scalars(session, SCALARS) == await old_get(pysnmp, SCALARS)
        # Max-repetitions 3: more requests, rows cut across answers; the same table.
        assert await walk.walk_columns(session, columns, max_repetitions=3) == theirs
    assert sum(map(len, ours.values())) > 0
    wireless = [c for c in columns if c not in _profile_columns("if_mib")]
    assert not wireless or any(ours[c] for c in wireless), "the profile's own columns walked"


# Columns of a real snmpd whose values do not move between two walks.
STEADY = {
    "1.3.6.1.2.1.2.2.1.2": "ifDescr",
    "1.3.6.1.2.1.2.2.1.3": "ifType",
    "1.3.6.1.2.1.2.2.1.5": "ifSpeed",
    "1.3.6.1.2.1.31.1.1.1.1": "ifName",
}
MOVING = {
    "1.3.6.1.2.1.2.2.1.10": "ifInOctets",
    "1.3.6.1.2.1.31.1.1.1.6": "ifHCInOctets",
    "1.3.6.1.2.1.31.1.1.1.10": "ifHCOutOctets",
}


async def test_snmpd_walks_equal_hlapi(snmpd: DeviceSettings) -> None:  # noqa: F811
    columns = [*STEADY, *MOVING]
    async with walk.open_session(snmpd) as session, hlapi(snmpd) as pysnmp:
        ours = await walk.walk_columns(session, columns)
        theirs = {column: await old_walk(pysnmp, column) for column in columns}
        scalars = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.99.0"]
        assert await walk.get_scalars(session, scalars) == await old_get(pysnmp, scalars)
    for column in STEADY:
        assert ours[column] == theirs[column], STEADY[column]
    rows = set(ours["1.3.6.1.2.1.2.2.1.2"])
    assert "1" in rows  # lo
    for column in columns:
        assert set(ours[column]) == set(theirs[column]) == rows, column
    for column in MOVING:
        assert all(isinstance(value, int) for value in ours[column].values())
