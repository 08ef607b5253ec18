"""A wheelhouse like `make dist`'s, made without the network: the readynet wheel and its deps.

`make dist` downloads the agent's dependencies from the package index; a test may not. Here
the readynet wheel is built from a copy of the source (`pip wheel --no-deps --no-index`), and
each dependency is packed back into a wheel from the copy installed in this venv: its files
(RECORD), its metadata and its original WHEEL tags, with a fresh RECORD. pip installs those
as it installs the downloaded ones.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
# What the build of the readynet wheel reads (pyproject.toml's packages and their data).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "agent", "collector")
# Where setuptools >= 77 comes from when this venv has none: the machine's local package mirror
# (a directory of wheels; pip reads it as files, never over the network).
BUILD_DEPS_MIRROR = Path("/opt/pypi/files")
# Left out of a repacked wheel: pip writes them at install time.
INSTALL_TIME_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def build_readynet_wheel(dest: Path, scratch: Path) -> Path:
    """The readynet wheel built from a copy of the working tree (the tree gets no build/)."""
    source = scratch / "source"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    args = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
    if Version(md.version("setuptools")) >= Version("77"):
        args.append("--no-build-isolation")
    else:
        args += ["--find-links", str(BUILD_DEPS_MIRROR)]
    proc = subprocess.run(
        [*args, "--wheel-dir", str(dest), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        "building the readynet wheel offline needs setuptools>=77 in this venv or in "
        f"{BUILD_DEPS_MIRROR}:\n{proc.stderr}"
    )
    (wheel,) = dest.glob("readynet-*.whl")
    return wheel


def agent_requirements() -> list[Requirement]:
    """pyproject's [project] dependencies: the agent's, not the collector extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def dependency_closure(requirements: list[Requirement]) -> list[md.Distribution]:
    """The installed distributions `requirements` need, theirs included (markers evaluated)."""
    found: dict[str, md.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = found.setdefault(key[0], md.distribution(req.name))
        assert dist.version in req.specifier, f"{req}: {dist.version} installed"
        for text in dist.requires or []:
            sub = Requirement(text)
            if not sub.marker or any(sub.marker.evaluate({"extra": e}) for e in {"", *req.extras}):
                todo.append(sub)
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def repack(dist: md.Distribution, dest: Path) -> Path:
    """`dist` as installed, packed back into a wheel in `dest` under its original tags."""
    files = [f for f in dist.files or [] if not str(f).startswith("..")]
    info = next(f for f in files if f.parts[0].endswith(".dist-info")).parts[0]
    wheel_meta = (Path(str(dist.locate_file(info))) / "WHEEL").read_text()
    tags = [line.split(": ", 1)[1] for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    path = dest / f"{name}-{dist.version}-{'-'.join('.'.join(p) for p in parts)}.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as wheel:
        for entry in files:
            if "__pycache__" in entry.parts or (
                entry.parts[0] == info and entry.name in INSTALL_TIME_FILES
            ):
                continue
            data = Path(str(dist.locate_file(entry))).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{entry.as_posix()},sha256={digest.decode()},{len(data)}")
            wheel.writestr(entry.as_posix(), data)
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def make_wheelhouse(dest: Path, scratch: Path) -> Path:
    """`dest` filled as `make dist` fills dist/wheelhouse; returns the readynet wheel in it."""
    dest.mkdir(parents=True)
    wheel = build_readynet_wheel(dest, scratch)
    for dist in dependency_closure(agent_requirements()):
        repack(dist, dest)
    return wheel
