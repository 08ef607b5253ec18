"""Classroom codes: what they look like, how they are made, and how typed ones are read.

A district hands each school a short code; a teacher types it on a student device to run the
classroom test page and record its result for that school. It is read aloud and typed on
phones and Chromebooks, so it uses 30 symbols that are hard to mistake for one another (the
digits 2-9 and the letters without I, L, O and U), 8 of them in two groups: `7KX4-M2QD`.
That is 30^8, about 6.6e11 codes (39 bits) drawn with `secrets`, far beyond guessing at HTTP
speed, while a school can be given a fresh code and the old one revoked at any time.

Typed codes are forgiving: case, spaces and the dash do not matter (`7kx4 m2qd`).

Example:
    >>> normalise("7kx4 m2qd")
    '7KX4-M2QD'
    >>> normalise("7KX4-M2QO") is None  # O is not a code symbol
    True
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_SYMBOLS = 8
GROUP = 4
# Anything longer than a code with every separator a person might type is not a code.
MAX_TYPED_CHARS = 32
_SEPARATORS = re.compile(r"[\s-]+")
_SYMBOLS = frozenset(ALPHABET)
# Where a code shows up in a request line (the LibreSpeed path, the page's `?code=`).
_IN_PATH = re.compile(r"(/librespeed/)[^/?#\s]+")
_IN_QUERY = re.compile(r"([?&]code=)[^&#\s]*", re.IGNORECASE)
MASK = "***"


def new_code(symbols: int = CODE_SYMBOLS) -> str:
    """A fresh random code in its canonical form, e.g. `7KX4-M2QD`.

    Longer codes (an agent's enrolment code has 16 symbols) are grouped by four the same way.
    """
    return _grouped("".join(secrets.choice(ALPHABET) for _ in range(symbols)))


def normalise(typed: str, symbols: int = CODE_SYMBOLS) -> str | None:
    """The canonical form of a typed code of `symbols` symbols, or None when it cannot be one."""
    if len(typed) > MAX_TYPED_CHARS * symbols // CODE_SYMBOLS:
        return None
    bare = _SEPARATORS.sub("", typed).upper()
    if len(bare) != symbols or not _SYMBOLS.issuperset(bare):
        return None
    return _grouped(bare)


def _grouped(symbols: str) -> str:
    return "-".join(symbols[i : i + GROUP] for i in range(0, len(symbols), GROUP))


def redact(text: str) -> str:
    """`text` (a request target, a log line) with any classroom code in it masked."""
    return _IN_QUERY.sub(rf"\g<1>{MASK}", _IN_PATH.sub(rf"\g<1>{MASK}", text))
