"""The web sign-in against a real collector: session cookie, CSRF, sign-out, revocation, the
rate limit and the same answer for an unknown name as for a wrong password (httpx keeps the
cookies as a browser would)."""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme
from sqlalchemy import select

from collector.api.errors import CSRF_MISSING, NOT_SIGNED_IN, SIGNIN_ATTEMPTS, SIGNIN_FAILED
from collector.store import people
from collector.store.models import AuditEntry, WebSession
from collector.store.people import Scope, create_user, revoke_user
from tests.fixtures.collector import RunningCollector, run_collector

NAME = "it@district.example"
PASSWORD = "correct horse battery staple"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _user(collector: RunningCollector, name: str = NAME) -> None:
    with collector.sessions() as session:
        create_user(
            session=session, name=name, role="admin", scope=Scope.everything(), password=PASSWORD
        )


def _sign_in(http: httpx.Client, name: str = NAME, password: str = PASSWORD) -> httpx.Response:
    return http.post("/signin", data={"name": name, "password": password})


@pytest.fixture
def browser(collector_any_db: RunningCollector) -> Iterator[httpx.Client]:
    _user(collector_any_db)
    with httpx.Client(base_url=collector_any_db.url) as http:
        yield http


def test_sign_in_use_and_sign_out(
    browser: httpx.Client, collector_any_db: RunningCollector
) -> None:
    page = browser.get("/signin")
    assert page.status_code == 200 and 'action="/signin"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and "http" not in page.text.split("<body>")[1]

    signed = _sign_in(browser)
    assert signed.status_code == 303 and signed.headers["location"] == "/me"
    cookies = {c.split("=", 1)[0]: c.lower() for c in signed.headers.get_list("set-cookie")}
    session_cookie, csrf_cookie = cookies["readynet_session"], cookies["readynet_csrf"]
    for flag in ("httponly", "samesite=strict", "path=/", "max-age=43199"):
        assert flag in session_cookie or flag.replace("43199", "43200") in session_cookie, flag
    assert "secure" not in session_cookie  # plain http here; see the https test
    assert "httponly" not in csrf_cookie  # pages' scripts read it for X-CSRF-Token
    cookie, csrf = browser.cookies["readynet_session"], browser.cookies["readynet_csrf"]
    with collector_any_db.sessions() as session:
        (stored,) = session.scalars(select(WebSession))
        assert stored.session_sha256 == hashlib.sha256(cookie.encode()).hexdigest()
        assert stored.csrf_sha256 == hashlib.sha256(csrf.encode()).hexdigest()
        hours = (stored.expires_at - stored.created_at).total_seconds() / 3600
        assert hours == pytest.approx(12)
        actions = session.scalars(select(AuditEntry.action)).all()
        assert actions == ["sign_in"]

    me = browser.get("/me")
    assert me.json()["name"] == NAME and me.json()["via"] == "session"
    assert browser.get("/api/v1/schools").status_code == 200
    shown = browser.get("/signin").text
    assert f"Signed in as <strong>{NAME}</strong>" in shown and f'value="{csrf}"' in shown

    # Any change by cookie needs the CSRF token (here an admin's inventory write): without it,
    # or with a wrong one, 403 before the route runs; with it, the write goes through.
    district = {"name": "Cookie ISD", "state": "TX"}
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        refused = browser.post("/api/v1/districts", json=district, headers=headers)
        assert (refused.status_code, refused.json()) == (403, {"detail": CSRF_MISSING})
    made = browser.post("/api/v1/districts", json=district, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        refused = browser.post("/signout", headers=headers)
        assert (refused.status_code, refused.json()) == (403, {"detail": CSRF_MISSING})
    refused = browser.post("/signout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert browser.get("/me").status_code == 200  # still signed in

    out = browser.post("/signout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert "readynet_session" not in browser.cookies
    gone = browser.get("/me", headers={"Cookie": f"readynet_session={cookie}"})
    assert (gone.status_code, gone.json()) == (401, {"detail": NOT_SIGNED_IN})


def test_the_sign_out_form_carries_its_csrf_token(collector: RunningCollector) -> None:
    _user(collector)
    with httpx.Client(base_url=collector.url) as http:
        assert _sign_in(http).status_code == 303
        csrf = http.cookies["readynet_csrf"]
        # What the page's form sends: the token as a field.
        out = http.post("/signout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert http.get("/me").status_code == 401
        # A bearer request needs no CSRF token; a signed-out cookie is nothing.
        assert http.post("/signout").status_code == 401


def test_a_revoked_or_expired_session_stops_working(collector: RunningCollector) -> None:
    _user(collector)
    _user(collector, "lapsed@district.example")
    with (
        httpx.Client(base_url=collector.url) as revoked,
        httpx.Client(base_url=collector.url) as lapsed,
    ):
        assert _sign_in(revoked).status_code == 303
        assert _sign_in(lapsed, "lapsed@district.example").status_code == 303
        assert revoked.get("/me").status_code == 200 and lapsed.get("/me").status_code == 200
        with collector.sessions() as session:
            revoke_user(session=session, name=NAME)
            for row in session.scalars(select(WebSession)):
                row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            session.commit()
        assert revoked.get("/me").status_code == 401
        assert lapsed.get("/me").status_code == 401
        # A revoked user cannot sign in again either, with the same answer as a wrong password.
        again = _sign_in(revoked)
        assert again.status_code == 401 and SIGNIN_FAILED in again.text


def test_wrong_password_and_unknown_name_look_alike(
    collector: RunningCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user(collector)
    # Both pay for a real scrypt check (the unknown name against a dummy hash), so the answer's
    # timing does not tell which names exist. Counted, not timed: a timing on a shared machine
    # says more about the machine.
    checks: list[str] = []
    real = people.verify_password

    def counted(password: str, stored: str | None) -> bool:
        checks.append("scrypt" if stored and stored.startswith("scrypt$") else "none")
        return real(password, stored)

    monkeypatch.setattr(people, "verify_password", counted)
    with httpx.Client(base_url=collector.url) as http:
        wrong = _sign_in(http, password="not the password")
        unknown = _sign_in(http, name="nobody@x.example")
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert wrong.text == unknown.text and SIGNIN_FAILED in wrong.text
    assert checks == ["scrypt", "scrypt"]


def _timed(call: object) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()  # type: ignore[operator]
    return response, time.perf_counter() - started


def test_sign_in_attempts_are_limited(sqlite_url: str) -> None:
    with run_collector(sqlite_url, signin_attempts_per_minute=3) as collector:
        _user(collector)
        with httpx.Client(base_url=collector.url) as http:
            for _ in range(3):
                assert _sign_in(http, password="guess").status_code == 401
            # The fourth in the minute is refused before the password is looked at.
            limited = _sign_in(http)
            assert (limited.status_code, limited.json()) == (429, {"detail": SIGNIN_ATTEMPTS})
            assert int(limited.headers["retry-after"]) >= 1
            # This address has used its attempts too, whatever name it tries next.
            assert _sign_in(http, name="other@x.example").status_code == 429
            bad = http.post("/signin", json={"name": NAME, "password": PASSWORD})
            assert bad.status_code == 415


def test_the_cookie_is_secure_over_https(sqlite_url: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    options = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}
    with run_collector(sqlite_url, server_options=options) as collector:
        _user(collector)
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        with httpx.Client(base_url=collector.url, verify=trusted) as http:
            signed = _sign_in(http)
    assert signed.status_code == 303
    for cookie in signed.headers.get_list("set-cookie"):
        assert "; secure" in cookie.lower(), cookie
