"""`readynet-agent enroll --collector URL --code CODE`: a one-time code for the agent's token.

A technician (or `deploy/pi/install.sh`) runs it once on the agent's box with the code that
`readynet-collector agent enroll` printed. The token goes into its own file (mode 600, beside
agent.yaml by default), never onto the command line or into the shell history; agent.yaml gets
`collector_url` and `token_file` (a missing agent.yaml is created, an existing one keeps every
other line and comment). Exit status: 0 enrolled, 1 refused or unreachable, 2 bad arguments.

Example:
    $ sudo readynet-agent enroll --collector https://readynet.district.example \\
          --code 7KX4-M2QD-R8TW-3HNP
    enrolled as agent 'school-12-agent-1' (id 31) of school 12 (Lincoln Elementary);
    token in /etc/readynet/agent.token
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from agent import __version__, tls
from agent.control import EnrolAnswer, EnrolRequest
from agent.errors import ConfigError
from agent.settings import DEFAULT_CONFIG_PATH, insecure_http_problem, load_settings

TOKEN_FILE_NAME = "agent.token"
TIMEOUT_S = 30.0


def add_parser(sub: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    enroll: argparse.ArgumentParser = sub.add_parser(
        "enroll",
        help="exchange a one-time enrolment code for this agent's token",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    enroll.add_argument("--collector", required=True, metavar="URL", help="the collector's URL")
    enroll.add_argument(
        "--code", required=True, help="the code from `readynet-collector agent enroll`"
    )
    enroll.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"agent.yaml to update or create (default: {DEFAULT_CONFIG_PATH})",
    )
    enroll.add_argument(
        "--token-file",
        type=Path,
        help=f"where to keep the token (default: {TOKEN_FILE_NAME} beside the config)",
    )
    enroll.add_argument("--ca-bundle", type=Path, help="CA certificates to verify the collector")
    enroll.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow http:// to a collector that is not on this machine (a lab network only)",
    )
    enroll.set_defaults(standalone=run)
    return enroll


def run(args: argparse.Namespace) -> int:
    url = str(args.collector).rstrip("/")
    if not url.startswith(("http://", "https://")):
        return _fail("--collector must start with https:// (or http://)", status=2)
    problem = insecure_http_problem(url, allowed=args.allow_insecure_http)
    if problem is not None:
        return _fail(
            f"--collector: {problem.replace('allow_insecure_http: true', '--allow-insecure-http')}",
            status=2,
        )
    if args.ca_bundle is not None:
        if not args.ca_bundle.is_file():
            return _fail(f"--ca-bundle: no such file: {args.ca_bundle}", status=2)
        tls.use_ca_bundle(args.ca_bundle.resolve())
    config: Path = args.config
    token_file: Path = args.token_file or config.parent / TOKEN_FILE_NAME
    try:
        request = EnrolRequest(
            code=args.code.strip(), hostname=socket.gethostname()[:255], agent_version=__version__
        )
    except ValidationError:
        return _fail("--code: not an enrolment code", status=2)
    try:
        answer = _exchange(url, request)
    except EnrolmentFailed as exc:
        return _fail(str(exc), status=1)
    try:
        write_token(token_file, answer.token)
        values: dict[str, Any] = {"collector_url": url, "token_file": str(token_file.resolve())}
        if args.ca_bundle is not None:
            values["ca_bundle"] = str(args.ca_bundle.resolve())
        if args.allow_insecure_http:
            values["allow_insecure_http"] = True
        update_config(config, values, remove=("token",))
    except OSError as exc:
        return _fail(
            f"enrolled as {answer.agent_name!r}, but cannot write {exc.filename}: {exc.strerror}; "
            "ask for a new code once that is fixed",
            status=1,
        )
    print(
        f"enrolled as agent {answer.agent_name!r} (id {answer.agent_id}) of school "
        f"{answer.school_id} ({answer.school_name}); token in {token_file}"
    )
    try:
        load_settings(config)
    except ConfigError as exc:
        print(f"warning: {config} does not load yet: {exc}", file=sys.stderr)
        return 1
    return 0


class EnrolmentFailed(Exception):
    pass


def _exchange(url: str, request: EnrolRequest) -> EnrolAnswer:
    try:
        with httpx.Client(
            timeout=TIMEOUT_S, verify=tls.collector_tls(url), trust_env=False
        ) as client:
            response = client.post(
                f"{url}/api/v1/enrol",
                content=request.model_dump_json(),
                headers={"Content-Type": "application/json"},
            )
    except httpx.HTTPError as exc:
        raise EnrolmentFailed(f"cannot reach the collector at {url}: {_reason(exc)}") from None
    if response.status_code == 201:
        try:
            return EnrolAnswer.model_validate_json(response.content)
        except ValidationError:
            raise EnrolmentFailed(
                f"{url} answered 201 but not with an enrolment: is it a ReadyNet collector?"
            ) from None
    raise EnrolmentFailed(f"the collector refused the code: {_refusal(response)}")


def _refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = str(body["detail"])
        reasons = [str(e["msg"]) for e in body.get("errors") or []]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
    return f"HTTP {response.status_code}: " + ("; ".join(reasons) if reasons else detail)


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def write_token(path: Path, token: str) -> None:
    """The token, whole or not at all, readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # an old partial file may have had a wider mode
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")


def update_config(path: Path, values: dict[str, Any], *, remove: tuple[str, ...] = ()) -> None:
    """Set top-level `values` in a YAML file and drop the `remove` keys; other lines stay.

    A key's old value may run over indented lines below it; those go with it. A missing file is
    created with mode 600 (it will name the token file, and may later hold SNMP credentials).
    """
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept: list[str] = []
    pending = dict(values)
    skipping = False
    for line in lines:
        match = _TOP_LEVEL_KEY.match(line)
        if match is None:
            if not (skipping and (line.startswith((" ", "\t")) or not line.strip())):
                kept.append(line)
                skipping = False
            continue
        key = match.group(1)
        skipping = key in values or key in remove
        if key in pending:
            kept.append(f"{key}: {_scalar(pending.pop(key))}")
        elif not skipping:
            kept.append(line)
    kept += [f"{key}: {_scalar(value)}" for key, value in pending.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(kept) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _scalar(value: Any) -> str:
    # JSON's strings, numbers and booleans are YAML scalars too, quoted where YAML needs it.
    return json.dumps(value)


def _fail(message: str, *, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status
