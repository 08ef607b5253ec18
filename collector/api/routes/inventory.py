"""The inventory over HTTP: districts, schools, circuits and testing rooms (CRUD, CSV)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["inventory"])
