"""Workspace trust: what a workspace file from a cloned repository may not change.

A `.tinyarms.toml` (or `[tool.tinyarms]`) arrives with `git clone`. Without trust it may
change only what keeps code where the user's own layers (preset and user file) send it and
costs no more:

- no endpoint or secret: `provider`, `base_url`, `base_urls` (every replica is an endpoint),
  `api_key_env` of a tier, and no new remote tier;
- no role or route pointed at a tier whose code leaves the machine, unless the user's
  layers already send that role there (its `tier` or `escalate_to`), and no remote role
  the user switched off switched back on;
- no budget raised or removed, no price changed, and no retry count, deadline, timeout or
  thread count raised (`LIMITS` below, as data);
- no `extends` (a preset or a file decides everything above).

Each refusal drops the key from the workspace layer (so the value below applies, and
`config show --explain` names it) and is a warning at the key's line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs

from tinyarms.backends.registry import LOCAL_DEFAULT, PROVIDERS
from tinyarms.config.layers import Layer, Problem, del_in, get_in
from tinyarms.config.locate import KeyPath
from tinyarms.config.schema import ROLE_NAMES, Agent, Reliability, Roles, Router, Tier

ENDPOINT_KEYS = ("base_url", "base_urls", "api_key_env", "provider")

Rule = Literal["budget", "no_raise", "fixed", "process"]

# Key patterns ("*" matches one table name) an untrusted workspace may only tighten:
# "budget": a USD limit, 0 = none, so it may set one where there was none or lower it;
# "no_raise": a number it may lower but not raise; "fixed": a table it may not set at all.
LIMITS: tuple[tuple[KeyPath, Rule], ...] = (
    (("budgets", "daily_usd"), "budget"),
    (("budgets", "monthly_usd"), "budget"),
    (("budgets", "roles", "*", "daily_usd"), "budget"),
    (("budgets", "roles", "*", "monthly_usd"), "budget"),
    (("tiers", "*", "price"), "fixed"),
    (("tiers", "*", "max_retries"), "no_raise"),
    (("tiers", "*", "timeout_s"), "no_raise"),
    (("tiers", "*", "n_threads"), "no_raise"),
    (("reliability", "deadline_s"), "no_raise"),
    (("reliability", "connect_timeout_s"), "no_raise"),
    (("router", "threads"), "no_raise"),
    # The agent: no process it would start, no limit raised ("process": a key it may not set).
    (("agent", "allow_commands"), "process"),
    (("agent", "commands"), "process"),
    (("agent", "mcp_servers"), "process"),
    (("agent", "max_cost_usd"), "budget"),
    (("agent", "max_steps"), "no_raise"),
    (("agent", "max_seconds"), "no_raise"),
    (("agent", "max_tokens"), "no_raise"),
    (("agent", "max_malformed"), "no_raise"),
    (("agent", "command_timeout_s"), "no_raise"),
    (("agent", "output_cap_bytes"), "no_raise"),
)


def _schema_default(path: KeyPath) -> Any:
    """The built-in value of a LIMITS key that no layer below set."""
    owner: type | None = {"tiers": Tier, "reliability": Reliability, "router": Router, "agent": Agent}.get(path[0])
    if path[0] == "budgets":
        return 0.0
    if owner is None:
        return None
    field = getattr(attrs.fields_dict(owner).get(path[-1]), "default", None)
    return None if isinstance(field, attrs.Factory) else field  # type: ignore[arg-type]


def _matches(data: dict[str, Any], pattern: KeyPath, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every key path in `data` that `pattern` names."""
    if not pattern:
        return [prefix]
    head, rest = pattern[0], pattern[1:]
    if not isinstance(data, dict):
        return []
    keys = list(data) if head == "*" else [head] if head in data else []
    found: list[KeyPath] = []
    for key in keys:
        if rest:
            found += _matches(data[key], rest, prefix + (key,))
        else:
            found.append(prefix + (key,))
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _loosens(rule: Rule, value: Any, below: Any) -> str | None:
    """Why `value` loosens `below` under `rule`, or None when it may stay."""
    if rule == "fixed":
        return "a price decides what a request is counted as costing"
    if rule == "process":
        return "the agent would start processes it names"
    if not _is_number(value):
        return None if isinstance(value, (str, list, dict, bool)) else "it is not a number"  # typed later
    if rule == "budget":
        below = below if _is_number(below) else 0.0
        if below == 0:
            return None if value >= 0 else "a budget cannot be negative"
        return None if 0 < value <= below else f"it would raise or remove the limit of {below} USD"
    if not _is_number(below):
        return "it would raise a value the built-in default leaves open"
    return None if value <= below else f"it would raise {below} to {value}"


def apply_trust(layer: Layer, lower: dict[str, Any], user_file: Path) -> list[Problem]:
    """Drop what an untrusted workspace layer may not set; say why, at the line that set it.

    `lower` is the merged data below the workspace (preset and user file).
    """
    problems: list[Problem] = []
    how = f"add this folder to trusted_workspaces in {user_file} to allow it"

    def drop(path: KeyPath, why: str) -> None:
        problems.append(
            Problem(
                f"ignored '{'.'.join(path)}': the workspace is not trusted and {why}; {how}",
                severity="warning",
                source=layer.sources.get(path),
                key=".".join(path),
            )
        )
        del_in(layer.data, path)

    if "extends" in layer.data:
        drop(("extends",), "a preset or another file decides where code is sent")
    dropped = _drop_endpoints(layer.data, lower, drop)
    _drop_remote_targets(layer.data, lower, dropped, drop)
    for pattern, rule in LIMITS:
        for path in _matches(layer.data, pattern):
            below = get_in(lower, path, _schema_default(path))
            if (why := _loosens(rule, get_in(layer.data, path), below)) is not None:
                drop(path, why)
    return problems


def _drop_endpoints(data: dict[str, Any], lower: dict[str, Any], drop: Callable[[KeyPath, str], None]) -> set[str]:
    """Drop endpoint keys and new remote tiers; returns the names of the tiers dropped."""
    dropped: set[str] = set()
    for name, tier in list((data.get("tiers") or {}).items()):
        if not isinstance(tier, dict):
            continue
        if name not in (lower.get("tiers") or {}):
            known = PROVIDERS.get(str(tier.get("provider", LOCAL_DEFAULT)))
            if known is None or known.remote or "base_url" in tier or "base_urls" in tier:
                drop(("tiers", name), "a new remote tier sends code to a new endpoint")
                dropped.add(name)
            continue
        for key in ENDPOINT_KEYS:
            if key in tier:
                drop(("tiers", name, key), f"'{key}' decides where code is sent or which secret is read")
    return dropped


def _remote(lower: dict[str, Any], name: Any) -> bool:
    """Whether tier `name` sends code off the machine (tiers only the user's layers define
    can be remote: an untrusted workspace's remote tiers are dropped before this)."""
    tier = get_in(lower, ("tiers", name)) if isinstance(name, str) else None
    if not isinstance(tier, dict):
        return False
    known = PROVIDERS.get(str(tier.get("provider", LOCAL_DEFAULT)))
    return known is None or known.remote


def _sent_by_user(lower: dict[str, Any], role: str) -> set[str]:
    """The tiers the user's layers send `role` to: its tier and its escalation chain."""
    default = Roles().get(role).tier if role in ROLE_NAMES else None
    tier = get_in(lower, ("roles", role, "tier"), default)
    chain = get_in(lower, ("roles", role, "escalate_to"))
    sent = {name for name in chain if isinstance(name, str)} if isinstance(chain, list) else set()
    return sent | {tier} if isinstance(tier, str) else sent


def _drop_remote_targets(
    data: dict[str, Any], lower: dict[str, Any], dropped: set[str], drop: Callable[[KeyPath, str], None]
) -> None:
    def leaves_machine(role: str, name: Any) -> bool:
        return name in dropped or (_remote(lower, name) and name not in _sent_by_user(lower, role))

    for role, table in list((data.get("roles") or {}).items()):
        if not isinstance(table, dict) or not isinstance(role, str):
            continue
        if leaves_machine(role, table.get("tier")):
            drop(("roles", role, "tier"), f"tier '{table['tier']}' sends code off this machine or was ignored")
        chain = table.get("escalate_to")
        if isinstance(chain, list) and any(leaves_machine(role, name) for name in chain):
            drop(("roles", role, "escalate_to"), "it names a tier that sends code off this machine")
        if table.get("enabled") is True and get_in(lower, ("roles", role, "enabled")) is False:
            tier = table.get("tier", get_in(lower, ("roles", role, "tier")))
            if _remote(lower, tier) or any(_remote(lower, name) for name in _sent_by_user(lower, role)):
                drop(("roles", role, "enabled"), "the user's config switched off this role, which sends code away")
    for name, route in list((data.get("routes") or {}).items()):
        if not isinstance(route, dict) or "tier" not in route:
            continue
        tier = route["tier"]
        role = route.get("role", get_in(lower, ("routes", name, "role"), "chat"))
        if tier != get_in(lower, ("routes", name, "tier")) and leaves_machine(str(role), tier):
            drop(("routes", name, "tier"), f"tier '{tier}' sends code off this machine")
