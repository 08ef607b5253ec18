"""The OpenAPI document, completed with the wire models that routes read by hand.

`POST /api/v1/results` parses its body itself (after checking the token), so FastAPI does not
see `Batch`; this adds its JSON Schema, and the models it refers to, to the components. The
classroom's result post takes one `ThroughputTest` narrowed to the classroom (`ClassroomTest`).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from agent.wire import Batch

REF_TEMPLATE = "#/components/schemas/{model}"


def with_wire_schemas(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            batch = TypeAdapter(Batch).json_schema(ref_template=REF_TEMPLATE)
            components.update(batch.pop("$defs", {}))
            components["Batch"] = batch
            components["ClassroomTest"] = _classroom_test(components["ThroughputTest"])
            _document_speedtest_limit(schema, app.state.settings.speedtest_max_bytes)
            _hoist_body_defs(schema["paths"], components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _classroom_test(throughput: dict[str, Any]) -> dict[str, Any]:
    # What POST /api/v1/classroom/results takes: a ThroughputTest over the classroom path,
    # with its room.
    test = copy.deepcopy(throughput)
    test["title"] = "ClassroomTest"
    test["properties"]["path"] = {"const": "classroom", "type": "string", "title": "Path"}
    test["required"] = sorted({*test.get("required", []), "path", "room"})
    test["properties"]["room"] = next(
        option for option in test["properties"]["room"]["anyOf"] if option.get("type") == "string"
    )
    return test


def _document_speedtest_limit(schema: dict[str, Any], max_bytes: int) -> None:
    # The largest download is a setting, so the published maximum is this collector's own.
    download = schema["paths"]["/api/v1/speedtest/download"]["get"]
    for parameter in download.get("parameters", []):
        if parameter["name"] == "bytes":
            parameter["schema"]["maximum"] = max_bytes


def _hoist_body_defs(paths: dict[str, Any], components: dict[str, Any]) -> None:
    # A body schema from `model_json_schema()` in `openapi_extra` keeps its nested models in
    # its own `$defs`, referred to as `#/$defs/...`: from the document's root, where nothing is.
    for item in paths.values():
        for operation in item.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                body = media.get("schema", {})
                components.update(_repointed(body.pop("$defs", {})))
                media["schema"] = _repointed(body)


def _repointed(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: value.replace("#/$defs/", "#/components/schemas/")
            if key == "$ref" and isinstance(value, str)
            else _repointed(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_repointed(value) for value in node]
    return node
