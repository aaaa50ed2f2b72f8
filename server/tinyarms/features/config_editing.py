"""Completion and hover while the user edits a tinyarms TOML file (`.tinyarms.toml`, the
user file, `[tool.tinyarms]` in pyproject.toml).

Both read the JSON Schema generated from the attrs schema (`config/jsonschema.py`), so a
key's documentation is written once, in `config/schema.py`:
- completion offers table headers (`[roles.chat]`, `[tiers.NAME]` for the tiers that
  exist), the keys of the table the cursor is in, and values: enums (providers, backends,
  role names), booleans, tier names for `tier` / `escalate_to` / `strong_tier`, and preset
  names (shipped and installed) for `extends`;
- hover shows a key's description and type, and the value in effect with its source
  (`preset default (…/roles/default.toml:12)`, a file and line, `env TINYARMS_…`).

It works on the buffer as typed (no TOML parse needed: a half-written line still
completes) and never loads a model or touches the network: one lookup per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import to_fs_path

from tinyarms.config import ROLE_NAMES, is_config_file
from tinyarms.config.explain import effective
from tinyarms.config.jsonschema import describe, generated
from tinyarms.config.layers import PYPROJECT, get_in, preset_names
from tinyarms.config.locate import KeyPath, key_lines, split_dotted
from tinyarms.config.schema import PROVIDERS
from tinyarms.features.base import Feature, Settings, Status

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyarms.config import LoadResult

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]*?)\s*\]?\]?\s*(#.*)?$")
_KEY_BEFORE_EQUALS = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"))*)\s*=""")
TIER_KEYS = {"tier", "escalate_to", "strong_tier"}
ROLE_KEYS = {"fallback_role", "role"}
PYPROJECT_PREFIX: KeyPath = ("tool", "tinyarms")


def _schema() -> dict[str, Any]:
    return generated()


def _target(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target: dict[str, Any] = _schema()["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return target
    return node


def _type_name(node: dict[str, Any]) -> str:
    node = _target(node)
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type", "table")
    if kind == "array":
        return f"list of {node.get('items', {}).get('type', 'values')}s"
    return {"object": "table"}.get(kind, kind)


class ConfigEditingFeature(Feature):
    def __init__(
        self, server: LanguageServer, settings: Settings, status: Status, result: Callable[[], LoadResult | None]
    ) -> None:
        super().__init__(server, settings, status)
        self.result = result  # the config feature's result in effect (values and their sources)

    # -- which documents -------------------------------------------------------------

    def handles(self, uri: str) -> bool:
        path = to_fs_path(uri)
        return path is not None and is_config_file(Path(path))

    def _document(self, uri: str) -> tuple[list[str], KeyPath]:
        """The buffer's lines, and the key prefix its tinyarms keys live under."""
        doc = self.server.workspace.get_text_document(uri)
        path = Path(to_fs_path(uri) or "")
        return doc.source.splitlines() or [""], PYPROJECT_PREFIX if path.name == PYPROJECT else ()

    @staticmethod
    def _table_at(lines: list[str], line: int) -> KeyPath:
        for row in range(min(line, len(lines) - 1), -1, -1):
            match = _HEADER.match(lines[row])
            if match and row != line:
                return split_dotted(match.group(1))
        return ()

    # -- completion ------------------------------------------------------------------

    def completion(self, params: types.CompletionParams) -> types.CompletionList:
        lines, prefix = self._document(params.text_document.uri)
        line = params.position.line
        text = lines[line] if line < len(lines) else ""
        before = text[: params.position.character]
        if before.lstrip().startswith("["):
            items = self._headers(lines, prefix)
        else:
            table = self._table_at(lines, line)
            if prefix and table[: len(prefix)] != prefix:
                return types.CompletionList(is_incomplete=False, items=[])
            table = table[len(prefix) :]
            key = _KEY_BEFORE_EQUALS.match(before)
            if key:
                items = self._values(table + split_dotted(key.group(1)), before[key.end() :], lines)
            else:
                items = self._keys(table)
        return types.CompletionList(is_incomplete=False, items=items)

    def _headers(self, lines: list[str], prefix: KeyPath) -> list[types.CompletionItem]:
        tiers = self._tier_names(lines)
        tables: list[KeyPath] = [("roles", role) for role in ROLE_NAMES]
        tables += [("tiers", name) for name in sorted(tiers)]
        tables += [("routes", name) for name in sorted(self._route_names())]
        tables += [("budgets", "roles", role) for role in ROLE_NAMES]
        tables += [(key,) for key, node in _schema()["properties"].items() if "$ref" in node]
        items = []
        for path in tables:
            found = describe(path)
            name = ".".join(prefix + path)
            items.append(
                types.CompletionItem(
                    label=f"[{name}]",
                    kind=types.CompletionItemKind.Module,
                    detail="table",
                    documentation=found[0] if found else None,
                    filter_text=f"[{name}]",
                    insert_text=f"{name}]",
                )
            )
        return items

    def _keys(self, table: KeyPath) -> list[types.CompletionItem]:
        found = describe(table) if table else ("", _schema())
        if found is None:
            return []
        items = []
        for key, node in (found[1].get("properties") or {}).items():
            is_table = "$ref" in node or node.get("type") == "object"
            items.append(
                types.CompletionItem(
                    label=key,
                    kind=types.CompletionItemKind.Module if is_table else types.CompletionItemKind.Property,
                    detail=_type_name(node),
                    documentation=types.MarkupContent(
                        kind=types.MarkupKind.Markdown, value=node.get("description", "")
                    ),
                    insert_text=key if is_table else f"{key} = ",
                )
            )
        return items

    def _values(self, path: KeyPath, after_equals: str, lines: list[str]) -> list[types.CompletionItem]:
        found = describe(path)
        node = found[1] if found else {}
        key = path[-1] if path else ""
        values: list[tuple[str, str]] = []  # (value, detail)
        if key == "extends":
            values = [(name, "preset") for name in preset_names()]
        elif key in TIER_KEYS:
            values = [(name, "tier") for name in sorted(self._tier_names(lines))]
        elif key in ROLE_KEYS and "enum" in node:
            values = [(name, "role") for name in node["enum"]]
        elif key == "provider":
            values = [(name, "provider") for name in PROVIDERS]
        elif "enum" in node:
            values = [(str(v), "") for v in node["enum"]]
        elif node.get("type") == "boolean":
            return [
                types.CompletionItem(label=v, kind=types.CompletionItemKind.Value, insert_text=v)
                for v in ("true", "false")
            ]
        quoted = after_equals.count('"') % 2 == 1  # the user already typed the opening quote
        listed = node.get("type") == "array" and "[" not in after_equals
        items = []
        for value, detail in values:
            text = value if quoted else json.dumps(value)
            items.append(
                types.CompletionItem(
                    label=value,
                    kind=types.CompletionItemKind.EnumMember
                    if detail != "tier"
                    else types.CompletionItemKind.Reference,
                    detail=detail or None,
                    insert_text=f"[{text}]" if listed and not quoted else text,
                    filter_text=value,
                )
            )
        return items

    def _tier_names(self, lines: list[str]) -> set[str]:
        names = set(self._effective().get("tiers", {}))
        for path in key_lines("\n".join(lines)):
            tail = path[2:] if path[:2] == PYPROJECT_PREFIX else path
            if len(tail) >= 2 and tail[0] == "tiers":
                names.add(tail[1])
        return names

    def _route_names(self) -> set[str]:
        return set(self._effective().get("routes", {}))

    def _effective(self) -> dict[str, Any]:
        result = self.result()
        return effective(result) if result and result.config else {}

    # -- hover -----------------------------------------------------------------------

    def hover(self, params: types.HoverParams) -> types.Hover | None:
        lines, prefix = self._document(params.text_document.uri)
        line = params.position.line
        if line >= len(lines):
            return None
        path = self._path_at(lines, line, params.position.character)
        if path is None or (prefix and path[: len(prefix)] != prefix):
            return None
        path = path[len(prefix) :]
        found = describe(path)
        if not path or found is None:
            return None
        description, node = found
        parts = [f"**{'.'.join(path)}** ({_type_name(node)})", description]
        result = self.result()
        if result is not None and result.config is not None:
            value = get_in(effective(result), path, default=_MISSING)
            if value is not _MISSING and not isinstance(value, dict):
                shown = json.dumps(value) if len(json.dumps(value)) <= 120 else f"[{len(value)} items]"
                parts.append(f"In effect: `{shown}` from {result.source(path)}")
            elif value is _MISSING:
                parts.append("Not set in the config in effect (the built-in default applies)")
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n".join(parts)))

    def _path_at(self, lines: list[str], line: int, column: int) -> KeyPath | None:
        text = lines[line]
        header = _HEADER.match(text)
        if header and text.lstrip().startswith("["):
            return split_dotted(header.group(1))
        key = _KEY_BEFORE_EQUALS.match(text)
        if key is None:
            return None
        path = self._table_at(lines, line) + split_dotted(key.group(1))
        # A key inside an inline table on this line: `cascade = { min_mean_logprob = -1.0 }`.
        for inner in re.finditer(r"[{,]\s*([A-Za-z0-9_-]+)\s*=", text):
            if inner.start(1) <= column <= inner.end(1):
                return path + (inner.group(1),)
        return path


_MISSING = object()
