"""The JSON Schema of a tinyarms TOML file, generated from the attrs schema in ``schema.py``.

Editors that speak JSON Schema for TOML (Taplo, Even Better TOML in VS Code) give
completion, hover docs and errors from it while the user types. Every table is closed
(``additionalProperties: false``), so a typo'd key is flagged at its line, and nothing is
``required``: a layer sets only the keys it names, the rest comes from below.

Descriptions come from the schema's own documentation: each field's trailing ``# comment``
(or the comment block right above it) and each class docstring. ``tinyarms config schema``
prints the result; the copy shipped in the wheel (``tinyarms.schema.json`` beside this
file) and in the VS Code extension is checked by a test to be current.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import re
import tokenize
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import attrs

from tinyarms.backends.registry import PROVIDERS
from tinyarms.config.schema import ACTION_KINDS, MAX_REPLICAS, ROLE_NAMES, Config
from tinyarms.config.validate import _unwrap

SCHEMA_FILE = Path(__file__).with_name("tinyarms.schema.json")
REQUEST_ROLES = [r for r in ROLE_NAMES if r != "autocomplete"]

# Keys whose values are names the type alone does not say (role names as plain strings).
NAMED_VALUES: dict[tuple[str, str], dict[str, Any]] = {
    ("Router", "fallback_role"): {"enum": REQUEST_ROLES},
    ("Route", "role"): {"enum": REQUEST_ROLES},
    ("Budgets", "roles"): {"propertyNames": {"enum": list(ROLE_NAMES)}},
    ("Tier", "api_key_env"): {"pattern": "^([A-Za-z_][A-Za-z0-9_]*)?$"},
    ("Tier", "provider"): {"enum": list(PROVIDERS)},  # backends/registry.py
    ("Route", "action_kind"): {"enum": list(ACTION_KINDS)},
    ("Tier", "base_urls"): {
        "items": {"type": "string", "pattern": "^https?://"},
        "minItems": 1,
        "maxItems": MAX_REPLICAS,
        "uniqueItems": True,
    },
}


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: its comment} for `cls` and its attrs bases (trailing comment, else the block above)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not attrs.has(klass) or klass.__module__ != cls.__module__:
            continue
        docs.update(_comments(inspect.getsource(klass), {f.name for f in attrs.fields(klass)}))
    return docs


_FIELD = re.compile(r"^\s+([A-Za-z_][A-Za-z0-9_]*)\s*:")


def _comments(source: str, names: set[str]) -> dict[str, str]:
    trailing: dict[int, str] = {}
    alone: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            (alone if not token.line[: token.start[1]].strip() else trailing)[token.start[0]] = text
    docs: dict[str, str] = {}
    lines = source.splitlines()
    for number, line in enumerate(lines, start=1):
        match = _FIELD.match(line)
        if not match or match.group(1) not in names or match.group(1) in docs:
            continue
        if number in trailing:
            docs[match.group(1)] = trailing[number]
            continue
        above: list[str] = []
        row = number - 1
        while row in alone:
            above.insert(0, alone[row])
            row -= 1
        if above:
            docs[match.group(1)] = " ".join(above)
    return docs


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}
_JSON_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum"}


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    tp = _unwrap(tp)
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if get_origin(tp) is Literal:
        return {"type": "string", "enum": list(get_args(tp))}
    if get_origin(tp) is list:
        return {"type": "array", "items": _type_schema(get_args(tp)[0], defs)}
    if get_origin(tp) is dict:
        return {"type": "object", "additionalProperties": _type_schema(get_args(tp)[1], defs)}
    if attrs.has(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placeholder first: recursive types terminate
            defs[tp.__name__] = _table(tp, defs)
        return {"$ref": f"#/definitions/{tp.__name__}"}
    raise TypeError(f"no JSON Schema for {tp!r}")


def _table(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    properties: dict[str, Any] = {}
    for f in attrs.fields(cls):
        prop = _type_schema(hints[f.name], defs)
        if f.name in docs:
            prop = {"description": docs[f.name], **prop}
        default = f.default
        if default is not attrs.NOTHING and not isinstance(default, attrs.Factory) and default is not None:  # type: ignore[arg-type]
            prop["default"] = default
        prop.update(NAMED_VALUES.get((cls.__name__, f.name), {}))
        # The range validate.py enforces (schema.bounds), so editors flag it while typing.
        prop.update({_JSON_BOUNDS[k]: v for k, v in (f.metadata.get("bounds") or {}).items()})
        properties[f.name] = prop
    table: dict[str, Any] = {"type": "object"}
    if doc := _doc(cls):
        table["description"] = doc
    table.update(properties=properties, additionalProperties=False)
    return table


def generate(preset_names: list[str] | None = None) -> dict[str, Any]:
    """The schema of a whole tinyarms file (user, workspace or preset)."""
    defs: dict[str, Any] = {}
    root = _table(Config, defs)
    root["properties"]["extends"]["examples"] = preset_names or []
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "tinyarms config",
        "description": "A tinyarms config file: ~/.config/tinyarms/config.toml, .tinyarms.toml, or a preset.",
        **{k: v for k, v in root.items() if k != "description"},
        "definitions": dict(sorted(defs.items())),
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped_schema_text() -> str:
    """The schema as shipped: generated with the shipped presets' names as `extends` examples."""
    from tinyarms.config.layers import presets_dir

    return render(generate(sorted(p.stem for p in presets_dir().glob("*.toml"))))


@functools.cache
def generated() -> dict[str, Any]:
    """`generate()` once per process, for lookups (treat it as read-only)."""
    return generate()


def describe(path: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
    """The description and schema of the key at `path` (tier and route names are wildcards)."""
    node: dict[str, Any] = generated()
    defs = node["definitions"]
    for key in path:
        node = defs[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    target = defs[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node
    return str(node.get("description") or target.get("description") or ""), target
