"""Target profiles: bandwidth targets loaded from YAML, validated strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROFILES_DIR = Path(__file__).parent / "profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    id: str
    link: Literal["internet", "wan"]
    school_year: str
    mbps_per_1000_users: float = Field(gt=0)
    basis: Literal["capacity", "peak", "capability", "measured"]
    status: Literal["confirmed", "unconfirmed"]


class TargetProfile(_Strict):
    name: str
    title: str
    source_url: str
    denominator: Literal["students_staff", "students"]
    min_tests: int = Field(ge=1)
    targets: list[Target] = Field(min_length=1)


class UnknownProfile(LookupError):
    pass


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> TargetProfile:
    """Load a packaged profile by name; raises UnknownProfile or ValueError naming the bad key."""
    path = PROFILES_DIR / f"{name}.yaml"
    if name not in available_profiles():
        raise UnknownProfile(f"unknown target profile {name!r}; have {available_profiles()}")
    try:
        profile = TargetProfile.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc
    if profile.name != name:
        raise ValueError(f"{path.name}: name {profile.name!r} does not match the file name")
    return profile
