"""Validators for the JSON Schemas in schemas/, shared by the tests that check documents.

An engine ``Output`` is checked with, for example::

    load_schema("billing").validate(json.loads(output.value))
    load_schema("billing.schema.json#/$defs/messageKey").validate(output.key.decode())
    load_schema("output-headers").validate(headers_document(output.headers))
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
BASE_URI = "https://cdrveil.example/schemas/"
SCHEMA_SUFFIX = ".schema.json"


def read_json(path: Path) -> Any:
    """Parse a UTF-8 JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def schema_registry() -> Registry:
    """Every schema in schemas/, registered under its $id, so $refs across files resolve."""
    resources = []
    for path in sorted(SCHEMA_DIR.glob(f"*{SCHEMA_SUFFIX}")):
        contents = read_json(path)
        if not isinstance(contents, dict):
            raise TypeError(f"{path.name} is not a JSON object")
        resources.append((contents["$id"], DRAFT202012.create_resource(contents)))
    return Registry().with_resources(resources).crawl()


def schema_uri(name: str) -> str:
    """The absolute URI of a schema file name, with an optional '#' JSON-pointer fragment."""
    file_name, hash_sign, fragment = name.partition("#")
    if not file_name.endswith(SCHEMA_SUFFIX):
        file_name += SCHEMA_SUFFIX
    return BASE_URI + file_name + hash_sign + fragment


def load_schema(name: str) -> Draft202012Validator:
    """A format-checking 2020-12 validator for a schema in schemas/.

    ``name`` is a file name ("billing.schema.json"), its stem ("billing"), or either with a
    JSON-pointer fragment ("analytics.schema.json#/$defs/messageKey") for a part of a schema.
    """
    uri = schema_uri(name)
    registry = schema_registry()
    # A one-line referencing schema validates against any part without copying it out, and
    # an unknown name fails here (referencing.exceptions.Unresolvable) rather than on use.
    registry.resolver().lookup(uri)
    return Draft202012Validator(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": uri},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def headers_document(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    """Kafka headers as the JSON object the header schemas describe; a repeated name is an error."""
    document: dict[str, str] = {}
    for name, value in headers:
        if name in document:
            raise ValueError(f"header {name!r} occurs more than once")
        document[name] = value.decode("utf-8")
    return document
