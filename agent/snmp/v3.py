"""SNMPv3 through pysnmp 7 asyncio: the part of `agent.snmp.walk` that needs pysnmp.

`agent.snmp.walk` imports this module only when an SNMPv3 device is polled (or a pysnmp value is
to be read), so a poller of SNMPv2c devices never loads pysnmp, pyasn1 or their MIB machinery
(about 20 MB of a Python process). Everything here speaks numeric OIDs (``lookupMib=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
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
from agent.settings import DeviceSettings, SnmpAuth
from agent.snmp import walk

# The engine.cache key where pysnmp.hlapi.varbinds looks for the engine's MibViewController. If a
# pysnmp release renames it, polls only get slower (a MIB view per engine), not wrong.
_MIB_VIEW_CACHE_KEY = "mibViewController"

AUTH_PROTOCOLS = {
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
PRIV_PROTOCOLS = {
    "DES": USM_PRIV_CBC56_DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": USM_PRIV_CFB192_AES,
    "AES256C": USM_PRIV_CFB256_AES,
}
# What pysnmp's USM says when v3 credentials are wrong: not an unreachable device.
USM_FAILURES = (
    errind.UnknownUserName,
    errind.UnknownSecurityName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
)


def new_engine() -> Any:
    """pysnmp's SnmpEngine, sharing one MIB view of the base SMI with every other engine."""
    engine = SnmpEngine()
    # hlapi builds a MIB view per engine on its first request (with pysmi installed, a whole
    # MIB compiler: 0.3-0.9 s); numeric OIDs only need the base SMI: share one.
    engine.cache[_MIB_VIEW_CACHE_KEY] = _shared_mib_view()
    return engine


@cache
def _shared_mib_view() -> Any:
    return MibViewController(MibBuilder())


async def transport_target(device: DeviceSettings) -> Any:
    """pysnmp's UDP target for `device`; raises DeviceUnreachable if the address is unknown."""
    try:
        return await UdpTransportTarget.create(
            (device.address, device.port), timeout=device.timeout_s, retries=device.retries
        )
    except PySnmpError as exc:
        reason = walk._redacted(device, str(exc))
        raise DeviceUnreachable(f"{device.name} ({walk.endpoint(device)}): {reason}") from exc


def auth_data(auth: SnmpAuth) -> Any:
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
        authProtocol=AUTH_PROTOCOLS[auth.auth_protocol] if auth_key else USM_AUTH_NONE,
        privProtocol=PRIV_PROTOCOLS[auth.priv_protocol] if priv_key else USM_PRIV_NONE,
    )


def context_data(auth: SnmpAuth) -> Any:
    return ContextData(contextName=auth.context.encode())


async def request(
    session: walk.SnmpSession, get_bulk: bool, oids: Sequence[bytes], max_repetitions: int
) -> list[tuple[bytes, Any]]:
    """One GET or GETBULK of BER-encoded OIDs through pysnmp, as `walk._request` answers it."""
    objects = [ObjectType(ObjectIdentity(walk._dotted(oid))) for oid in oids]
    try:
        if get_bulk:
            answer: walk._Answer = await bulk_cmd(
                session.engine,
                session.auth,
                session.target,
                session.context,
                0,
                max_repetitions,
                *objects,
                lookupMib=False,
            )
        else:
            answer = await get_cmd(
                session.engine,
                session.auth,
                session.target,
                session.context,
                *objects,
                lookupMib=False,
            )
    except PySnmpError as exc:
        raise DeviceError(f"{session.label}: {walk._redacted(session.device, str(exc))}") from exc
    return [
        (walk._oid_body(tuple(name)), _from_pysnmp(value))
        for name, value in walk._checked(session, answer)
    ]


def credentials_refused(error_indication: Any) -> bool:
    return isinstance(error_indication, USM_FAILURES)


def discovery_hint(session: walk.SnmpSession, error_indication: Any) -> str:
    """For a timeout from a device that answered the engine discovery before (pysnmp's v3
    message processing keeps the engine ID it reported): what that timeout likely means."""
    if not isinstance(error_indication, errind.RequestTimedOut):
        return ""
    peer = session.target.get_transport_info()
    for model in session.engine.message_processing_subsystems.values():
        engine_info = getattr(model, "get_peer_engine_info", None)
        if engine_info is not None and engine_info(*peer)[0] is not None:
            return (
                ", though the device answered SNMPv3 discovery: check the priv protocol, "
                "the priv key and the context (a device drops a request it cannot "
                "decrypt, or for a context it does not serve, without a word)"
            )
    return ""


def to_python(value: Any) -> walk.SnmpValue:
    """Turn one pysnmp value into `int` (counters, gauges, ticks, integers) or `str`."""
    if isinstance(value, univ.ObjectIdentifier):
        return walk.format_oid(tuple(value))
    if isinstance(value, IpAddress):
        return str(value.prettyPrint())
    if isinstance(value, univ.OctetString):
        return walk._decode_octets(bytes(value.asOctets()))
    if isinstance(value, univ.Integer):
        return int(value)
    raise DeviceError(f"unsupported SNMP value type {type(value).__name__}: {value!r}")


def is_absent(value: Any) -> bool:
    return isinstance(value, (NoSuchObject, NoSuchInstance, EndOfMibView))


def _from_pysnmp(value: Any) -> Any:
    if is_absent(value):
        return walk._ABSENT[type(value).__name__]
    try:
        return to_python(value)
    except DeviceError as exc:
        return walk._Unsupported(str(exc))
