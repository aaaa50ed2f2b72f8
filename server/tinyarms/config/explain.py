"""Render the effective config as TOML or JSON, optionally naming every value's source."""

from __future__ import annotations

import json
from typing import Any

from tinyarms.config.loader import LoadResult, unstructure
from tinyarms.config.locate import KeyPath


def effective(result: LoadResult) -> dict[str, Any]:
    """The effective config as a dict shaped like the TOML."""
    assert result.config is not None
    return unstructure(result.config)


def explained(result: LoadResult) -> dict[str, Any]:
    """Like `effective`, with each leaf as {"value": ..., "source": ...}."""

    def walk(node: dict[str, Any], path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = path + (key,)
            if isinstance(value, dict) and value:
                out[key] = walk(value, here)
            else:
                out[key] = {"value": value, "source": str(result.source(here))}
        return out

    return walk(effective(result), ())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def to_toml(result: LoadResult, explain: bool = False) -> str:
    """TOML text; with `explain`, each value is followed by a `# source` comment."""
    lines: list[str] = []

    def emit(table: dict[str, Any], path: KeyPath) -> None:
        scalars = {k: v for k, v in table.items() if not (isinstance(v, dict) and v)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict) and v}
        if path and scalars:
            lines.append("")
            lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
        for key, value in scalars.items():
            text = f"{_toml_key(key)} = {_toml_value(value)}"
            if explain:
                text = f"{text:<48} # {result.source(path + (key,))}"
            lines.append(text)
        for key, value in tables.items():
            emit(value, path + (key,))

    emit(effective(result), ())
    return "\n".join(lines).lstrip("\n") + "\n"


def roles_summary(result: LoadResult) -> list[str]:
    """One line per role: role -> tier (provider, model) -> escalation chain."""
    config = result.config
    assert config is not None
    out = []
    for name in ("autocomplete", "chat", "edit", "agent"):
        role = config.roles.get(name)
        tier = config.tiers[role.tier]
        chain = " -> ".join(role.escalate_to)
        line = f"{name:<13} -> {role.tier} ({tier.provider}: {tier.model})"
        if chain:
            line += f", escalates to {chain}"
        if not role.enabled:
            line += " [disabled]"
        out.append(line)
    return out
