"""Keep secrets (the agent token, SNMP communities) out of every text the agent writes.

Library exceptions quote what they were given: h11 refuses a header with
``Illegal header value b'Bearer <token> '``, and pydantic repeats ``input_value=...``. Any text
made from such an exception passes through `redact` (or `describe`) before it is printed,
raised as one of our errors, or stored in a result; `error_text` also cuts it to what the wire
contract accepts, since a result the collector refuses would block the outbox behind it.

Example:
    >>> redact("Illegal header value b'Bearer s3cr3t '", ["s3cr3t"])
    "Illegal header value b'Bearer *** '"
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from agent.wire import MAX_ERROR_CHARS, AnyMeasurement

MASK = "***"
_CUT_MARK = "…"

_Result = TypeVar("_Result", bound=AnyMeasurement)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by ``***``, also where a library quoted it escaped."""
    forms = {form for secret in secrets for form in _forms(secret) if form.strip()}
    # Longest first, so a secret that contains another is masked whole, not in pieces.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def describe(exc: BaseException, secrets: Iterable[str]) -> str:
    """``ConnectError: All connection attempts failed``: an exception safe to show or store."""
    message = str(exc)
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__, secrets)


def error_text(text: str, secrets: Iterable[str]) -> str:
    """Redacted, escaped and cut to `MAX_ERROR_CHARS`: what a result's `error` may carry."""
    # Redact before cutting: a cut could split a secret and leave a piece the mask misses.
    text = redact(text, secrets)
    # The wire contract refuses NUL and lone surrogates (no database stores both the same way);
    # escaped, a device's odd bytes still show in the error instead of failing the result.
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - len(_CUT_MARK)] + _CUT_MARK


def scrub(result: _Result, secrets: Iterable[str]) -> _Result:
    """The result with its `error` passed through `error_text` (the same object if unchanged)."""
    if result.error is None:
        return result
    error = error_text(result.error, secrets)
    # model_copy keeps the type; mypy sees only the union.
    return result if error == result.error else result.model_copy(update={"error": error})  # type: ignore[return-value]


def _forms(secret: str) -> set[str]:
    # As given, stripped, and as repr() of str and of bytes shows it (escaped quotes, \n, \xe9).
    return {
        secret,
        secret.strip(),
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
    }
