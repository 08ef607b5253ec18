"""Data functions for people: users with a role and a scope, their API tokens and passwords.

A user is an `admin` (reads and changes) or a `viewer` (reads) of a scope: everything (`all`),
one state (two-letter code), one district or one school. Scripts and Prometheus use API tokens
(`rnu_` + 43 random characters; only the SHA-256 is kept); people signing in to the web pages
use a password, kept as scrypt (the standard library's, with a random salt and its parameters
alongside, so they can be raised later without breaking old hashes).

Example:
    >>> user = create_user(session=session, name="it@district.example", role="admin",
    ...                    scope=Scope.district(7))
    >>> token = create_api_token(session=session, user_name="it@district.example", name="cli")
    >>> principal_for_token(session=session, token=token).role
    'admin'
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, delete, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.store.models import ApiToken, District, School, User, WebSession
from collector.store.queries import DuplicateName, hash_token

Role = Literal["admin", "viewer"]
ScopeKind = Literal["all", "state", "district", "school"]
TOKEN_PREFIX = "rnu_"
# scrypt: N=2^15, r=8, p=1 takes about 50 ms and 32 MiB here: slow for a guesser, fine for a
# sign-in. Stored with the hash, so a later change keeps old hashes verifiable.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
# A token's last_used_at is written at most this often: a read stays a read (Prometheus scrapes
# every 30 s), and "last used" to the minute is all anyone asks of it.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class UnknownUser(LookupError):
    """No user has that name."""


class UnknownToken(LookupError):
    """No API token of that user has that name."""


@dataclass(frozen=True)
class Scope:
    """What a user may see: everything, or one state, district or school."""

    kind: ScopeKind
    state: str | None = None
    district_id: int | None = None
    school_id: int | None = None

    @classmethod
    def everything(cls) -> Scope:
        return cls("all")

    @classmethod
    def of_state(cls, state: str) -> Scope:
        return cls("state", state=state.upper())

    @classmethod
    def district(cls, district_id: int) -> Scope:
        return cls("district", district_id=district_id)

    @classmethod
    def school(cls, school_id: int) -> Scope:
        return cls("school", school_id=school_id)

    def describe(self) -> str:
        match self.kind:
            case "all":
                return "all"
            case "state":
                return f"state {self.state}"
            case "district":
                return f"district {self.district_id}"
            case "school":
                return f"school {self.school_id}"


@dataclass(frozen=True)
class Principal:
    """Who is asking, as plain values (safe across threads): a user, through a token or a
    web session."""

    user_id: int
    name: str
    role: Role
    scope: Scope
    # `token:<token name>` or `session`, for the audit log.
    via: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return f"user:{self.name} ({self.via})"


def create_user(
    *, session: Session, name: str, role: Role, scope: Scope, password: str | None = None
) -> User:
    _check_scope(session, scope)
    user = User(
        name=name,
        role=role,
        scope=scope.kind,
        scope_state=scope.state,
        scope_district_id=scope.district_id,
        scope_school_id=scope.school_id,
        password_hash=None if password is None else hash_password(password),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"a user named {name!r} exists already") from exc
    return user


def _check_scope(session: Session, scope: Scope) -> None:
    if scope.kind == "district" and (
        scope.district_id is None or session.get(District, scope.district_id) is None
    ):
        raise LookupError(f"no district with id {scope.district_id}")
    if scope.kind == "school" and (
        scope.school_id is None or session.get(School, scope.school_id) is None
    ):
        raise LookupError(f"no school with id {scope.school_id}")
    if scope.kind == "state" and (scope.state is None or len(scope.state) != 2):
        raise LookupError("a state is its two-letter code, e.g. TX")


def user_by_name(*, session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UnknownUser(f"no user named {name!r}")
    return user


def list_users(*, session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.name)).all()


def revoke_user(*, session: Session, name: str, now: datetime | None = None) -> User:
    """The user can no longer sign in or use any token; the row stays for the audit log.

    Their web sessions are deleted (a revoked user's session is refused anyway)."""
    user = user_by_name(session=session, name=name)
    if user.revoked_at is None:
        user.revoked_at = now or datetime.now(UTC)
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
        session.commit()
    return user


def create_api_token(
    *,
    session: Session,
    user_name: str,
    name: str,
    expires_at: datetime | None = None,
) -> str:
    """A new token for the user, shown this once."""
    user = user_by_name(session=session, name=user_name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, name=name, token_sha256=hash_token(token), expires_at=expires_at)
    )
    session.commit()
    return token


def revoke_api_token(
    *, session: Session, user_name: str, name: str, now: datetime | None = None
) -> int:
    """Revoke the user's tokens called `name`; how many were active."""
    user = user_by_name(session=session, name=user_name)
    tokens = session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.name == name, ApiToken.revoked_at.is_(None)
        )
    ).all()
    if (
        not tokens
        and session.scalar(
            select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.name == name)
        )
        is None
    ):
        raise UnknownToken(f"user {user_name!r} has no token named {name!r}")
    for token in tokens:
        token.revoked_at = now or datetime.now(UTC)
    session.commit()
    return len(tokens)


def principal_for_token(
    *, session: Session, token: str, now: datetime | None = None
) -> Principal | None:
    """The user behind an API token, unless the token or the user is revoked or expired."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = now or datetime.now(UTC)
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_sha256 == hash_token(token))
    ).one_or_none()
    if row is None:
        return None
    api_token, user = row
    if api_token.revoked_at is not None or user.revoked_at is not None:
        return None
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION:
        api_token.last_used_at = now
        session.commit()
    return principal_of(user, via=f"token:{api_token.name}")


def sign_in(*, session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, else None, in about the same time either way.

    An unknown name is checked against a dummy hash, so the answer's timing does not tell which
    names exist; a revoked user or one without a password is refused the same way.
    """
    user = session.scalar(select(User).where(User.name == name))
    stored = None if user is None else user.password_hash
    matches = verify_password(password, stored or _dummy_hash())
    if user is None or stored is None or user.revoked_at is not None or not matches:
        return None
    return user


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class WebSignIn:
    """A new web session: the cookie's value and its CSRF token, shown this once."""

    cookie: str
    csrf_token: str
    expires_at: datetime


def create_web_session(
    *, session: Session, user_id: int, lifetime: timedelta, now: datetime | None = None
) -> WebSignIn:
    """A session for a signed-in user; only the SHA-256 of its cookie and CSRF token are kept.

    Expired sessions are deleted on the way, so the table holds only live ones.
    """
    now = now or datetime.now(UTC)
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = now + lifetime
    session.add(
        WebSession(
            session_sha256=hash_token(cookie),
            csrf_sha256=hash_token(csrf),
            user_id=user_id,
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.commit()
    return WebSignIn(cookie=cookie, csrf_token=csrf, expires_at=expires_at)


@dataclass(frozen=True)
class SignedIn:
    """The user behind a session cookie, and the digest its CSRF token must match."""

    principal: Principal
    csrf_sha256: str


def principal_for_session(
    *, session: Session, cookie: str, now: datetime | None = None
) -> SignedIn | None:
    """The user of a live web session, unless it expired or the user is revoked."""
    now = now or datetime.now(UTC)
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.session_sha256 == hash_token(cookie))
    ).one_or_none()
    if row is None:
        return None
    web, user = row
    if web.expires_at <= now or user.revoked_at is not None:
        return None
    return SignedIn(principal_of(user, via="session"), web.csrf_sha256)


def end_web_session(*, session: Session, cookie: str) -> bool:
    """Sign out: forget the session; whether there was one."""
    gone = session.execute(
        delete(WebSession).where(WebSession.session_sha256 == hash_token(cookie))
    )
    session.commit()
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def principal_of(user: User, *, via: str) -> Principal:
    scope = Scope(
        kind=user.scope,  # type: ignore[arg-type]  # the CHECK constraint holds it to ScopeKind
        state=user.scope_state,
        district_id=user.scope_district_id,
        school_id=user.scope_school_id,
    )
    return Principal(
        user_id=user.id,
        name=user.name,
        role=user.role,  # type: ignore[arg-type]  # held to Role by the CHECK constraint
        scope=scope,
        via=via,
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=_SCRYPT_MAXMEM,
    )
    return "$".join(
        [
            "scrypt",
            str(_SCRYPT_N),
            str(_SCRYPT_R),
            str(_SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored` (constant time); False for no or a broken hash."""
    if stored is None:
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def visible_schools(scope: Scope) -> ColumnElement[bool]:
    """A condition on `School` that holds for the schools `scope` covers."""
    match scope.kind:
        case "all":
            return true()
        case "state":
            in_state = select(District.id).where(District.state == scope.state)
            return School.district_id.in_(in_state.scalar_subquery())
        case "district":
            return School.district_id == scope.district_id
        case "school":
            return School.id == scope.school_id


def visible_districts(scope: Scope) -> ColumnElement[bool]:
    """A condition on `District` for the districts `scope` covers (a school's: its own)."""
    match scope.kind:
        case "all":
            return true()
        case "state":
            return District.state == scope.state
        case "district":
            return District.id == scope.district_id
        case "school":
            own = select(School.district_id).where(School.id == scope.school_id)
            return District.id == own.scalar_subquery()


def sees_school(*, session: Session, scope: Scope, school_id: int) -> bool:
    found = session.scalar(select(School.id).where(School.id == school_id, visible_schools(scope)))
    return found is not None
