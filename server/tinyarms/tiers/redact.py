"""`trace.text = false` (the `privacy` preset): the decision trace keeps names and numbers only.

The trace never records a request or an answer on purpose, but free-text fields can still
carry them: an error reason that quotes a server's message, a budget warning, a field
someone adds later. So this is an allowlist, not a blocklist: numbers, booleans and nulls
stay; a string stays only under a key that holds a name tinyarms chose (a role, a tier, a
model, an outcome); every other string is dropped, at any depth. A new free-text field is
then private by default.
"""

from __future__ import annotations

from typing import Any

# Keys whose string values are names from the config or from tinyarms' own vocabulary.
NAME_KEYS = frozenset(
    {
        "id", "role", "route", "stage", "requested_tier", "tier", "provider", "model", "outcome", "kind",
        "errors", "error", "cache", "usage", "price", "price_source", "self_check", "template", "source",
        "conversation", "run", "replica",
    }
)  # fmt: skip


def names_only(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of `record` without free text."""
    cleaned: dict[str, Any] = _clean(record, "")
    return cleaned


def _clean(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            cleaned = _clean(item, str(name))
            if cleaned is not _DROP:
                out[name] = cleaned
        return out
    if isinstance(value, list):
        return [item for item in (_clean(v, key) for v in value) if item is not _DROP]
    if isinstance(value, str):
        return value if key in NAME_KEYS else _DROP
    return value


_DROP = object()
