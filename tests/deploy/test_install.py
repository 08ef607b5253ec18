"""deploy/pi/install.sh for real, as root, in a throwaway root (see sandbox.py), and shellcheck.

The wheelhouse is made once per module without the network (see wheelhouse.py), like
`make dist`'s. pip is never allowed an index: PIP_INDEX_URL points at a closed loopback port,
so any index access would fail, and pip's own log must not mention one. Around every test the
host's user database and the install paths are checked unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from collector.store.models import Measurement
from tests.deploy.sandbox import ThrowawayRoot
from tests.deploy.wheelhouse import make_wheelhouse
from tests.fixtures.collector import RunningCollector
from tests.fixtures.commands import run_ok

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "pi" / "install.sh"
UNIT = "readynet-agent.service"
USER = "readynet-agent"
# What the script may write, and the user database: none of it may change on the host.
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
HOST_ABSENT = (
    "/opt/readynet",
    "/etc/readynet",
    "/var/lib/readynet-agent",
    f"/etc/systemd/system/{UNIT}",
    "/run/systemd/system",
)
NO_INDEX = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_RETRIES": "0"}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("dist") / "wheelhouse"
    make_wheelhouse(house, tmp_path_factory.mktemp("build"))
    return house


def _host_state() -> dict[str, str | bool]:
    state: dict[str, str | bool] = {
        name: hashlib.sha256(Path(name).read_bytes()).hexdigest() for name in HOST_FILES
    }
    state.update({name: Path(name).exists() for name in HOST_ABSENT})
    return state


@contextmanager
def throwaway_root(workdir: Path, network: bool) -> Iterator[ThrowawayRoot]:
    before = _host_state()
    assert not any(before[name] for name in HOST_ABSENT), "the host has an agent installed"
    sandbox = ThrowawayRoot(workdir, network=network)
    try:
        yield sandbox
    finally:
        sandbox.close()
        assert _host_state() == before, "install.sh changed the host outside its throwaway root"


@pytest.fixture
def root(tmp_path: Path) -> Iterator[ThrowawayRoot]:
    """A throwaway root that shares the host's network (its loopback collector)."""
    with throwaway_root(tmp_path / "root", network=True) as sandbox:
        yield sandbox


@pytest.fixture
def offline_root(tmp_path: Path) -> Iterator[ThrowawayRoot]:
    """A throwaway root in a network namespace of its own: no network at all."""
    with throwaway_root(tmp_path / "root", network=False) as sandbox:
        yield sandbox


def install(
    root: ThrowawayRoot, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return root.run("bash", SCRIPT, *args, env={**NO_INDEX, **(env or {})})


def succeeded(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """The one-line error of a refusal."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("install.sh: "), proc.stderr
    return lines[0]


def snapshot(root: ThrowawayRoot, *dirs: str) -> dict[str, tuple[int, int, int, int, str]]:
    """Every file under `dirs` (inside the root): mode, owner, mtime and content."""
    found = {}
    for top in dirs:
        base = root.path(top)
        for path in [base, *base.rglob("*")]:
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            found[str(path.relative_to(base.parent))] = (
                info.st_mode,
                info.st_uid,
                info.st_gid,
                info.st_mtime_ns,
                digest,
            )
    return found


def uid_of(root: ThrowawayRoot, user: str) -> int | None:
    for line in root.path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2])
    return None


def test_offline_install_twice_then_uninstall_and_purge(
    offline_root: ThrowawayRoot, wheelhouse: Path
) -> None:
    root = offline_root
    # No network at all in this root: an index would not even resolve.
    first = succeeded(install(root, "--wheelhouse", wheelhouse))
    assert f"pip install readynet-0.1.0-py3-none-any.whl with the wheels in {wheelhouse}" in first
    # Not enrolled: installed, neither enabled nor started, and the next step is said.
    assert "not enrolled" in first and "--collector URL --enroll-code CODE" in first
    assert root.systemctl_calls() == ["daemon-reload"]
    assert root.path("/opt/readynet/bin/readynet-agent").is_file()
    venv = root.path("/opt/readynet/pyvenv.cfg").read_text()
    assert "home = /usr/bin" in venv  # the system's python3, as on a Pi
    uid = uid_of(root, USER)
    assert uid is not None and uid < 1000  # a system user
    state = root.path("/var/lib/readynet-agent").stat()
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (uid, 0o700)
    unit = root.path(f"/etc/systemd/system/{UNIT}").read_text()
    assert (
        "ExecStart=/opt/readynet/bin/readynet-agent run --config /etc/readynet/agent.yaml" in unit
    )

    # Idempotent: the second run succeeds and changes nothing.
    before = snapshot(root, "/opt/readynet", "/etc/readynet", "/etc/systemd/system")
    users = root.path("/etc/passwd").read_text()
    second = succeeded(install(root, "--wheelhouse", wheelhouse))
    assert "is installed already" in second and "pip install" not in second
    assert snapshot(root, "/opt/readynet", "/etc/readynet", "/etc/systemd/system") == before
    assert root.path("/etc/passwd").read_text() == users
    assert root.systemctl_calls() == ["daemon-reload"]

    # --uninstall keeps the config and the outbox.
    root.path("/etc/readynet/agent.yaml").write_text("collector_url: https://example.invalid\n")
    root.path("/var/lib/readynet-agent/outbox.sqlite3").write_bytes(b"results")
    out = succeeded(install(root, "--uninstall"))
    assert "keeping /etc/readynet" in out and "keeping /var/lib/readynet-agent" in out
    for gone in ("/opt/readynet", f"/etc/systemd/system/{UNIT}"):
        assert not root.path(gone).exists(), gone
    assert uid_of(root, USER) is None
    assert root.path("/var/lib/readynet-agent/outbox.sqlite3").read_bytes() == b"results"
    assert root.path("/etc/readynet/agent.yaml").exists()
    # Uninstalling what is not installed is fine too; --purge removes config and outbox.
    succeeded(install(root, "--uninstall", "--purge"))
    for gone in ("/etc/readynet", "/var/lib/readynet-agent"):
        assert not root.path(gone).exists(), gone


def test_refusals(root: ThrowawayRoot, wheelhouse: Path, tmp_path: Path) -> None:
    assert refused(install(root)) == (
        "install.sh: say where readynet comes from: --wheel FILE, --wheelhouse DIR or --index URL"
    )
    missing = tmp_path / "readynet-0.1.0-py3-none-any.whl"
    assert refused(install(root, "--wheel", missing)) == f"install.sh: no such wheel: {missing}"
    assert refused(install(root, "--wheelhouse", tmp_path)).startswith(
        f"install.sh: no readynet-*.whl in {tmp_path}"
    )
    nobody = root.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
                      SCRIPT, "--wheelhouse", wheelhouse)  # fmt: skip
    assert refused(nobody).startswith("install.sh: run as root")
    usage = install(root, "--wheelhouse", wheelhouse, "--enroll-code", "RN-X")
    assert usage.returncode == 2
    assert usage.stderr == "install.sh: --enroll-code needs --collector URL (see --help)\n"

    # python3 too old, or without venv: a stand-in python3 first on PATH says so.
    fake = tmp_path / "python"
    fake.mkdir()
    for case, script, message in [
        ("old", 'case "$*" in -V) echo "Python 3.9.2";; *) exit 1;; esac',
         "install.sh: python3 is Python 3.9.2; readynet needs 3.11 or newer"),
        ("novenv", 'case "$*" in *version_info*) exit 0;; *) exit 1;; esac',
         "install.sh: the python3 venv module is missing: apt-get install python3-venv"),
    ]:  # fmt: skip
        (fake / case).mkdir()
        (fake / case / "python3").write_text(f"#!/bin/sh\n{script}\n")
        (fake / case / "python3").chmod(0o755)
        path = f"{fake / case}:{root.env()['PATH']}"
        assert refused(install(root, "--wheelhouse", wheelhouse, env={"PATH": path})) == message

    # A wheelhouse without one of the agent's dependencies: pip's complaint, summarised.
    partial = tmp_path / "partial"
    shutil.copytree(wheelhouse, partial, ignore=shutil.ignore_patterns("pyyaml-*"))
    assert refused(install(root, "--wheelhouse", partial)) == (
        f"install.sh: the wheelhouse {partial} has no wheel for pyyaml>=6: "
        "rebuild it with 'make dist'"
    )
    assert not root.path(f"/etc/systemd/system/{UNIT}").exists()


def _simple_index(wheelhouse: Path, dest: Path) -> Path:
    """A PEP 503 index of the wheelhouse's wheels, as files (pip reads file:// indexes)."""
    for wheel in wheelhouse.glob("*.whl"):
        project = dest / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        with (project / "index.html").open("a") as page:
            page.write(f'<a href="{wheel.as_uri()}">{wheel.name}</a>\n')
    return dest


def test_index_installs_the_checkouts_release(
    offline_root: ThrowawayRoot, wheelhouse: Path, tmp_path: Path
) -> None:
    index = _simple_index(wheelhouse, tmp_path / "simple").as_uri()
    out = succeeded(install(offline_root, "--index", index))
    assert f"pip install readynet==0.1.0 from {index}" in out
    assert offline_root.path("/opt/readynet/bin/readynet-agent").is_file()
    # A release the index does not have: pip's complaint, summarised.
    missing = install(offline_root, "--index", index, "--release", "9.9")
    assert refused(missing) == "install.sh: pip found no wheel for readynet==9.9"


AGENT_CONFIG = {
    # A district's agent.yaml, prepared before enrolment: quick to deliver, loopback only.
    "onnet": {"enabled": False},
    "internet": {"enabled": False},
    "delivery_interval_s": 1,
    "snmp_interval_s": 3600,
    # Nothing answers there: its poll is a result with the error set, delivered at once.
    "devices": [{"name": "closet-switch", "address": "127.0.0.1", "port": 9, "timeout_s": 0.2,
                 "retries": 0}],
}  # fmt: skip


def _enrolment_code(collector: RunningCollector, school_id: int) -> str:
    env = {**os.environ, "READYNET_COLLECTOR_DATABASE_URL": collector.database_url}
    out = run_ok(
        Path(sys.executable).parent / "readynet-collector", "agent", "enroll",
        "--school", str(school_id), env=env,
    )  # fmt: skip
    return out.splitlines()[0]


def test_enrolment_starts_the_agent_and_prints_its_first_delivery(
    root: ThrowawayRoot, wheelhouse: Path, collector: RunningCollector
) -> None:
    school = collector.add_school()
    enrol = ("--collector", collector.url)
    # A refused code: the collector's reason, and nothing started.
    bad = install(root, "--wheelhouse", wheelhouse, *enrol, "--enroll-code", "RN-AAAA-BBBB-CCCC")
    assert refused(bad).startswith("install.sh: enrolment failed: the collector refused the code")
    assert "enable --now readynet-agent.service" not in root.systemctl_calls()

    root.path("/etc/readynet/agent.yaml").write_text(yaml.safe_dump(AGENT_CONFIG))
    code = _enrolment_code(collector, school)
    args = ("--wheelhouse", wheelhouse, *enrol, "--enroll-code", code)
    # --no-start: enrolled and enabled, not started, nothing waited for.
    out = succeeded(install(root, *args, "--no-start"))
    assert "enrolled as agent" in out and "the agent reached" not in out
    assert root.systemctl_calls()[-1] == f"enable {UNIT}" and root.daemon_pid() is None

    # Started while the collector is down: installed, but said so, exit 3, where to look.
    collector.server.stop()
    late = install(root, *args, "--wait", "3")
    assert late.returncode == 3 and root.daemon_pid() is not None
    assert late.stderr == (
        "install.sh: installed and started, but no heartbeat or delivery within 3s; "
        f"see: journalctl -u {UNIT}\n"
    )

    # The collector back: the first delivery is printed.
    collector.server.start()
    args = (*args, "--wait", "60")
    out = succeeded(install(root, *args))
    assert "enrolled already" in out
    assert "the agent reached the collector: last delivery: 20" in out, out
    assert f"enable --now {UNIT}" in root.systemctl_calls()
    with collector.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) >= 1
    uid = uid_of(root, USER)
    for name in ("agent.yaml", "agent.token"):
        info = root.path(f"/etc/readynet/{name}").stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (uid, 0o600), name
    config = yaml.safe_load(root.path("/etc/readynet/agent.yaml").read_text())
    assert config["collector_url"] == collector.url and config["delivery_interval_s"] == 1
    status = json.loads(
        succeeded(root.run("runuser", "-u", USER, "--", "/opt/readynet/bin/readynet-agent",
                           "status", "--config", "/etc/readynet/agent.yaml", "--format", "json"))
    )  # fmt: skip
    assert status["last_delivery_at"] is not None

    # Again with the same arguments: nothing changes, the agent keeps running.
    pid = root.daemon_pid()
    calls = len(root.systemctl_calls())
    before = snapshot(root, "/opt/readynet", "/etc/readynet", "/etc/systemd/system")
    again = succeeded(install(root, *args))
    assert "enrolled already" in again and "the agent reached the collector" in again
    assert snapshot(root, "/opt/readynet", "/etc/readynet", "/etc/systemd/system") == before
    assert root.daemon_pid() == pid and pid is not None
    assert root.systemctl_calls()[calls:] == [f"is-active --quiet {UNIT}", f"enable {UNIT}"]

    # --uninstall stops the agent first; its outbox and token stay.
    succeeded(install(root, "--uninstall"))
    assert f"disable --now {UNIT}" in root.systemctl_calls()
    assert root.daemon_pid() is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert root.path("/var/lib/readynet-agent/outbox.sqlite3").exists()
    assert root.path("/etc/readynet/agent.token").exists()


def test_install_script_is_shellcheck_clean() -> None:
    # scripts/system-deps.sh installs Debian's shellcheck.
    run_ok("shellcheck", "--shell=bash", SCRIPT)
    assert "shellcheck disable" not in SCRIPT.read_text()
