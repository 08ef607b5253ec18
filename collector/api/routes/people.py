"""People over HTTP: signing in to the web pages, and who is signed in."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["people"])
