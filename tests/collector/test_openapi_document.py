"""The collector's OpenAPI document holds together: every reference resolves (Swagger UI and
client generators refuse a document whose `$ref`s point nowhere)."""

from __future__ import annotations

import json
import re

import httpx

from tests.fixtures.collector import RunningCollector


def test_every_reference_in_the_openapi_document_resolves(collector: RunningCollector) -> None:
    document = httpx.get(f"{collector.url}/openapi.json").json()
    refs = set(re.findall(r'"\$ref": ?"([^"]+)"', json.dumps(document)))
    known = {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
    assert refs - known == set()
